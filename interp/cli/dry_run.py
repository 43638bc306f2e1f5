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
) -> None:
    """Print ``costs`` (with ``notes``, what the command runs besides) when ``show``, and
    refuse it when one worker's peak exceeds ``budget`` GiB (default: this machine's memory),
    naming the option that brings it under."""
    from interp.engine.memory import machine_memory_gb

    budget = machine_memory_gb() if budget is None else budget
    if show:
        for line in [*costs.lines(), *notes, f"budget per worker: {budget:.3f} GiB"]:
            console.print(line, highlight=False)
    costs.check(budget, sources_knob)
    if show:
        console.print("fits the budget")


def dry_run_first(analysis, config, model: str, task: str, execution, estimate) -> bool:
    """``--dry-run`` and ``--memory-budget`` for any registered analysis: print its
    :meth:`~interp.analysis.Analysis.estimate` (with ``--dry-run``) and refuse a run over the
    budget. True when the command stops here (a dry run)."""
    if not estimate.wanted:
        return False
    cost = analysis.estimate(model, task, config, execution.parallel_workers)
    report(cost.costs, estimate.memory_budget, estimate.show, cost.knob, cost.notes)
    return estimate.show
