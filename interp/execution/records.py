"""What a run directory's manifest says about where its chunks ran: every executor run made
inside a block, with merged totals, written also when the block fails."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from interp.engine.dispatch import using
from interp.execution.local import default_executor

if TYPE_CHECKING:
    from interp.execution.base import Executor


def run_record(executor: Executor, since: int = 0) -> dict[str, Any]:
    """What a run directory's manifest says about its executor: every run from ``records``
    index ``since`` on (``runs``, one record each, in order), and their totals at the top
    (chunks, retries tagged with their run, workers started and replaced, unfinished chunks),
    so a run of several engine plans (the circuit, task vectors) keeps every one."""
    runs = executor.records[since:]
    head = {k: v for k, v in executor.record.items() if k in ("executor", "address", "workers")}
    if not runs:
        return head | {"chunks": 0, "retries": [], "unfinished": [], "runs": []}
    total = lambda key: sum(r.get(key, 0) for r in runs)  # noqa: E731
    merged = runs[-1] | {
        "chunks": total("chunks"),
        "rows": total("rows"),
        "retries": [t | {"run": i} for i, r in enumerate(runs) for t in r["retries"]],
        "unfinished": [{"run": i, "chunk": c} for i, r in enumerate(runs) for c in r["unfinished"]],
        "runs": runs,
    }
    if runs[0]["executor"] == "ray":
        merged |= {
            "workers_started": max(r["workers_started"] for r in runs),
            "workers_replaced": total("workers_replaced"),
            "seconds": round(total("seconds"), 3),
        }
    if len(runs) == 1:  # one plan: its chunk numbers as they were
        merged["unfinished"] = runs[0]["unfinished"]
    return merged


@contextmanager
def recorded(executor: Executor | None, write: Callable[[dict[str, Any]], object]):
    """Run the block's engines (and :meth:`~Executor.map` calls on the yielded executor) on
    ``executor`` (``None``: a new local one) and hand ``write`` the :func:`run_record` of every
    run made inside it, also when the block fails: a run directory's manifest then lists every
    plan of a run of several, with its retries and unfinished chunks."""
    executor = executor or default_executor()
    since = len(executor.records)
    try:
        with using(executor):
            yield executor
    finally:
        write(run_record(executor, since))
