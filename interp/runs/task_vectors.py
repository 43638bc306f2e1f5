"""``run_task_vectors``: function vectors, task vectors and soft injection (see the docs,
``docs/analyses/task-vectors.md``) written as a run directory of kind ``task-vectors``.

The analysis lives in :mod:`circuits.task_vectors` (:mod:`~circuits.task_vectors.analysis` for
its config and run, :mod:`~circuits.task_vectors.report` for its tables, figures and report,
:mod:`~circuits.task_vectors.overlap` for the comparison with the ICL circuit's heads). This
module is the old import path, kept for notebooks and scripts that use it; nothing inside the
package imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from circuits.task_vectors import TaskVectors
from circuits.task_vectors.analysis import TaskVectorsAnalysis, TaskVectorsConfig
from circuits.task_vectors.data import resolve_tasks, tasks_for
from circuits.task_vectors.overlap import circuit_heads, overlap
from circuits.task_vectors.report import (
    HEADLINE,
    figures,
    stability_section,
    targets,
    task_vectors_report,
    task_vectors_summary,
    task_vectors_tables,
    write_tensors,
)
from interp.analysis import run_analysis

__all__ = [
    "HEADLINE",
    "circuit_heads",
    "figures",
    "overlap",
    "resolve_tasks",
    "run_task_vectors",
    "stability_section",
    "targets",
    "task_vectors_report",
    "task_vectors_summary",
    "write_tables",
]


def run_task_vectors(
    out: str | Path,
    model: str = "smollm2",
    task: str = "all",
    analysis: TaskVectors | None = None,
    circuit_prompts: int = 64,
    log: Callable[[str], object] = print,
    executor=None,
) -> Path:
    """Run :class:`~circuits.task_vectors.TaskVectors` and write a run directory under ``out``.

    ``executor`` runs its engine plans (the AIE, the FV and TV layer sweeps, the soft-injection
    evaluation; :mod:`interp.execution`, local by default) and the manifest lists every
    one. Soft injection's training (gradient descent) and the caches stay in this process."""
    analysis = analysis or TaskVectors()
    knobs = {f.name: getattr(analysis, f.name) for f in fields(TaskVectors)}
    config = TaskVectorsConfig(
        **knobs, circuit_prompts=circuit_prompts, tasks=tasks_for(model, task)
    )
    return run_analysis(
        TaskVectorsAnalysis(), config, out=out, model=model, task=task, executor=executor, log=log
    )


def write_tables(run, result) -> None:
    """The result's tables, ``alpha.pt``, ``alpha_fits.pt`` and figures into ``run`` (a
    :class:`~interp.runs.store.RunWriter`)."""
    from interp.runs.reports import integer_axes

    for name, table in task_vectors_tables(result).items():
        run.table(name, table)
    write_tensors(run.path, result)
    for name, fig in figures(result).items():
        run.figure(name, integer_axes(fig))
