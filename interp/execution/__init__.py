"""Where chunks run: one after another here, or on the workers of a Ray cluster.

The engine turns a plan into a :class:`~interp.engine.layout.Job` (the source runs cached
once, the rows laid out in chunks of one forward pass each) and hands it to an executor, which
returns one metric value per plan row. The engine knows executors only through the protocol
of :mod:`interp.engine.dispatch`; the executors call the engine, never the other way round.

* :class:`LocalExecutor` runs the chunks in this process, in order (:mod:`.local`).
* :class:`RayExecutor` ships the job to a pool of Ray actors, each holding the model once,
  retries the chunks of a worker that died and replaces it (:mod:`.ray`, :mod:`.worker`).

Analyses that do not run an engine plan (eviction, block relevance: forward passes with their
own masks and hooks) hand an executor a :class:`Work` instead: a picklable object that loads
what its chunks need once per worker (the model) and turns a chunk number into a result.
:meth:`LocalExecutor.map` and :meth:`RayExecutor.map` return the results in chunk order, so the
caller aggregates them exactly as it would have in its own loop. That is why the executors are
a package of their own rather than part of :mod:`interp.engine`.

Every executor keeps a :attr:`record` of its last run (executor, workers, retries, unfinished
chunks) and :attr:`records` of all of them; a run directory writes :func:`run_record` (every
run since a mark, with merged totals) into its manifest (:mod:`.records`).
"""

from interp.engine.dispatch import using
from interp.execution.base import Done, Executor, ExecutorFailed, Work
from interp.execution.local import LocalExecutor, default_executor
from interp.execution.ray import IN_FLIGHT, RayExecutor, import_ray
from interp.execution.records import recorded, run_record
from interp.execution.worker import MODELS_PER_WORKER

__all__ = [
    "IN_FLIGHT",
    "MODELS_PER_WORKER",
    "Done",
    "Executor",
    "ExecutorFailed",
    "LocalExecutor",
    "RayExecutor",
    "Work",
    "default_executor",
    "import_ray",
    "recorded",
    "run_record",
    "using",
]
