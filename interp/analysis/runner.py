"""One runner for every analysis: what each run shares, written once.

:func:`run_analysis` checks the request, opens the run directory, loads the model, makes the
executor current, runs the analysis, and writes what its :class:`~interp.analysis.base.Result`
knows (tables, figures with whole-number axes, summary, report, static figures). Ctrl-C, a
failure or a dead worker leave the manifest saying so, because the run directory is a context
manager (:class:`~interp.runs.store.RunWriter`) and the executor's records are written in a
``finally``. The command line, notebooks and tests all go through here, so no two analyses can
drift apart in how they write a run.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from interp.analysis.base import Analysis, AnalysisConfig, Log, Result, config_from
from interp.analysis.registry import get

if TYPE_CHECKING:
    from interp.tasks.family import TaskFamily


LONG_RUN_SECONDS = 60
"""A run estimated to take longer than this says so as it starts."""


@dataclass(frozen=True)
class ExecutionOptions:
    """Where a run's chunks go: this process, or the workers of a Ray cluster. The command
    line's shared execution options (``--executor``, ``--ray-address``, ``--workers``,
    ``--max-retries``) arrive as one of these."""

    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    workers: int = 2
    max_retries: int = 3

    @property
    def parallel_workers(self) -> int:
        """Workers that hold a model at once (what a memory estimate multiplies by)."""
        return self.workers if self.executor == "ray" else 1


@contextlib.contextmanager
def open_executor(options: ExecutionOptions | None) -> Iterator[Any]:
    """The executor ``options`` name, closed when the block ends (``None`` for local: the
    engine then makes its own, as it always has)."""
    if options is None or options.executor == "local":
        yield None
        return
    from interp.execution import RayExecutor

    executor = RayExecutor(
        address=options.ray_address, workers=options.workers, max_retries=options.max_retries
    )
    try:
        yield executor
    finally:
        executor.close()


def write_result(run, result: Result, score: str | None = None) -> dict[str, Any]:
    """A result's tables, figures, artifacts, summary and report into ``run`` (a
    :class:`~interp.runs.store.RunWriter`); return the summary. Every figure gets whole-number
    ticks on the axes that count layers, heads or positions, and a line in the report at the
    end of the section that discusses it (:meth:`~interp.analysis.Result.figure_sections`)."""
    from interp.runs.reports import integer_axes, place_figures

    learned = result.params()
    if learned:
        run.params(learned)
    for name, table in result.tables().items():
        run.table(name, table)
    figures = {name: integer_axes(fig) for name, fig in result.figures().items()}
    for name, fig in figures.items():
        run.figure(name, fig)
    for filename, text in result.artifacts().items():
        run.artifact(filename, text)
    result.write_files(run.path)
    summary = result.summary()
    run.summary(summary)
    report = place_figures(result.report(summary), result.figure_sections(), figures)
    if score is not None:
        report = report.rstrip("\n") + f"\n\nScored by {score}.\n"
    run.report(report)
    return summary


def task_name(task: str | TaskFamily) -> str:
    """A family passed as an object is registered under its name, which then travels on."""
    if isinstance(task, str):
        return task
    from interp.tasks.suite import register_family

    return register_family(task)


def task_files(task: str) -> dict[str, Any]:
    """``{"task_files": {name: origin}}`` for the file families among ``task``, else ``{}``."""
    from interp.tasks.suite import FILE_FAMILIES

    names = [n.strip() for n in task.split(",")]
    found = {n: FILE_FAMILIES[n].origin.to_json() for n in names if n in FILE_FAMILIES}
    return {"task_files": found} if found else {}


def run_analysis(
    analysis: Analysis | str,
    config: AnalysisConfig,
    *,
    out: str | Path,
    model: str,
    task: str | TaskFamily,
    execution: ExecutionOptions | None = None,
    executor: Any = None,
    log: Log = print,
    command: Sequence[str] | str | None = None,
    params: dict[str, Any] | None = None,
) -> Path:
    """Run ``analysis`` (an instance or a registered kind) on ``model`` and ``task`` with
    ``config`` and write one run directory under ``out``; return its path.

    ``task`` is a family name (or several, comma-separated, where the analysis takes them) or a
    family from :func:`interp.tasks.from_file` / :func:`interp.tasks.from_pairs`; a file
    family's path, size, SHA-256, columns and split go into the manifest as ``task_files``.

    ``execution`` names where its chunks run (an executor is opened and closed here);
    ``executor`` passes one the caller already holds instead. ``params`` adds to the
    manifest's ``params`` beside the config's own (a value the config does not hold).
    """
    from interp.execution import recorded
    from interp.runs.reports import export_static
    from interp.runs.store import RunWriter

    analysis = get(analysis) if isinstance(analysis, str) else analysis
    task = task_name(task)
    analysis.check(model, task, config)  # refused before a run directory exists for nothing
    scored = {"score": analysis.score}
    manifest_params = {**config.params(), **scored, **task_files(task), **(params or {})}
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(open_executor(execution))
        with RunWriter(
            out,
            kind=analysis.kind,
            model=model,
            task=task,
            seed=config.seed,
            command=sys.argv if command is None else command,
            params=manifest_params,
        ) as run:
            log(f"loading {model} ...")
            start = time.perf_counter()
            loaded = analysis.load(model, config)
            analysis.run_dir = run.path
            workers = execution.parallel_workers if execution is not None else 1
            from interp.analysis.timing import RUN_BUDGET_SECONDS, measuring_budget

            with measuring_budget(RUN_BUDGET_SECONDS):  # the dry run times every plan
                cost = analysis.estimate(model, task, config, workers, loaded=loaded)
            for line in cost.lines() if cost is not None else ():
                log(f"estimate: {line}")
            cost = cost.with_time(loaded) if cost is not None else None
            elapsed = time.perf_counter() - start
            seconds = cost.seconds(elapsed) if cost is not None else None
            if seconds is not None and seconds > LONG_RUN_SECONDS:  # worth knowing up front
                log(cost.time_line(elapsed))
            _seed_everything(config.seed)
            with recorded(executor, run.executor) as current:  # the manifest lists every run
                result = analysis.run(loaded, task, config, current, log=log)
            write_result(run, result, analysis.score)
            export_static(run.path, log=log)
    log(str(run.path))
    return run.path


def _seed_everything(seed: int) -> None:
    """Seed the global generators an analysis might draw from without a generator of its own
    (a layer's initial weights, a random control), so the same seed gives the same numbers."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_with_arguments(analysis: Analysis, arguments: dict[str, Any]) -> Path:
    """Run ``analysis`` from one function's arguments (``locals()`` of an older ``run_*``
    call): ``out``, ``model``, ``task``, ``executor`` and ``log`` go to the runner, the rest
    into the analysis's config."""
    config = config_from(analysis.config_type, arguments)
    return run_analysis(
        analysis,
        config,
        out=arguments["out"],
        model=arguments["model"],
        task=arguments.get("task", analysis.kind),
        executor=arguments.get("executor"),
        log=arguments.get("log", print),
    )
