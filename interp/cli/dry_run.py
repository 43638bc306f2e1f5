"""What every ``--dry-run`` and ``--memory-budget`` prints and refuses, whatever the estimate.

An estimate is either a command's engine plans (:class:`~interp.engine.memory.Costs`, for
``run patch``, ``run circuit``, ``run task-vectors``) or its chunks of prompts
(:class:`~interp.engine.memory.WorkEstimate`, for ``run eviction`` and ``run
block-relevance``, which run no engine plan). Both say their lines and check a budget, so one
function shows and refuses them alike, before any run directory exists.
"""

from __future__ import annotations

from interp.cli.app import console


def report(
    costs,
    budget: float | None,
    show: bool = True,
    sources_knob: str | dict[str, str] = "--prompts",
    notes: tuple[str, ...] = (),
    time_line: str | None = None,
) -> None:
    """Print ``costs`` (with ``notes``, what the command runs besides, and ``time_line``, the
    estimated time) when ``show``, and refuse it when one worker's peak exceeds ``budget``
    GiB (default: this machine's memory), naming the option that brings it under."""
    from interp.engine.memory import machine_memory_gb

    budget = machine_memory_gb() if budget is None else budget
    if show:
        lines = [*costs.lines(), *notes, f"budget per worker: {budget:.3f} GiB"]
        for line in [*lines, *([time_line] if time_line else [])]:
            console.print(line, highlight=False, soft_wrap=True)  # a line stays one line
    costs.check(budget, sources_knob)
    if show:
        console.print("fits the budget")


def dry_run_first(analysis, config, model: str, task: str, execution, estimate) -> bool:
    """``--dry-run`` and ``--memory-budget`` for any registered analysis: print its
    :meth:`~interp.analysis.Analysis.estimate` and estimated time (with ``--dry-run``) and
    refuse a run over the budget. True when the command stops here (a dry run)."""
    if not estimate.wanted:
        return False
    from time import perf_counter

    start = perf_counter()
    cost = analysis.estimate(model, task, config, execution.parallel_workers)
    time_line = None
    if estimate.show:
        if hasattr(cost.costs, "largest"):  # chunks of prompts: timed on the loaded model
            cost = cost.with_time(analysis.load(model, config))
        time_line = cost.time_line(perf_counter() - start)
    report(cost.costs, estimate.memory_budget, estimate.show, cost.knob, cost.notes, time_line)
    return estimate.show
