"""Run directories and the runs that write them.

* :mod:`~interp.runs.store`: the directory format (write atomically, load, list, check);
* :mod:`~interp.runs.reports`: a report's markdown and figures as one HTML page;
* :mod:`~interp.runs.patch`, :mod:`~interp.runs.circuit`, :mod:`~interp.runs.demo`: the runs.
"""

from interp.runs.store import Run, RunWriter, list_runs, load_run, resolve_run

__all__ = ["Run", "RunWriter", "list_runs", "load_run", "resolve_run"]
