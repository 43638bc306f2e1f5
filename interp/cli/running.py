"""What every analysis command does once its options are checked and its config is built."""

from __future__ import annotations

from interp.cli.app import log, report_path
from interp.cli.dry_run import dry_run_first


def run_command(analysis, config, options: dict) -> None:
    """With ``--dry-run`` print what the run would cost and stop; with ``--memory-budget``
    refuse a run over it; otherwise run it through
    :func:`~interp.analysis.runner.run_analysis` (progress on the console) and end with
    :func:`~interp.cli.app.report_path`. ``options``: the command's option values by name
    (its ``locals()``), of which ``out``, ``model``, ``task``, ``execution`` and ``estimate``
    are read here."""
    out, model = options["out"], options["model"]
    task = options.get("task", analysis.kind)
    execution, estimate = options.get("execution"), options.get("estimate")
    if estimate is not None and dry_run_first(analysis, config, model, task, execution, estimate):
        return
    from interp.analysis import run_analysis

    path = run_analysis(
        analysis,
        config,
        out=out,
        model=model,
        task=task,
        execution=execution,
        log=log,
    )
    report_path(path)
