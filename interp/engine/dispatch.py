"""How the engine hands a prepared job's chunks to whatever runs them, without knowing the
executors.

The engine turns a plan into a :class:`~interp.engine.layout.Job` and gives it to an
executor, which returns one metric value per plan row. The executors themselves (the local one,
the Ray pool, their records) live in :mod:`interp.execution`, above the engine: they call
:meth:`~interp.engine.batched.Engine.run_chunk`, and eviction and block relevance use them
with no engine plan at all. What the engine needs of them is defined here, below it:

* :class:`PlanExecutor`, the one method the engine calls;
* the executor of the innermost :func:`using` block, which an engine made inside it takes (how
  a run passes its executor to analyses that build their own engines);
* :class:`InProcess`, the chunks run here one after another, the part of the local executor
  that concerns a plan. :mod:`interp.execution` registers its local executor (which adds
  ``map``) as the default with :func:`set_default`, so an engine made outside any
  :func:`using` block gets a fresh one; until that package is imported the default is a plain
  :class:`InProcess`, which runs a plan the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from interp.engine.layout import Job


class ChunkEngine(Protocol):
    """What an executor needs of an engine: one chunk of a job, one forward pass (an
    :class:`~interp.engine.batched.Engine`)."""

    def run_chunk(self, job: Job, index: int) -> Tensor: ...


class PlanExecutor(Protocol):
    """Runs a job's chunks on some engine(s) and returns one value per plan row; ``record``
    describes its last run and ``records`` all of them."""

    record: dict[str, Any]
    records: list[dict[str, Any]]

    def run(self, engine: ChunkEngine, job: Job, progress: bool = True) -> Tensor: ...


class InProcess:
    """Every chunk of a plan in this process, one after another."""

    def __init__(self) -> None:
        self.record: dict[str, Any] = {"executor": "local", "workers": 1, "retries": []}
        self.records: list[dict[str, Any]] = []

    def _done(self, kind: str, chunks: int, rows: int) -> None:
        self.record = {
            "executor": "local",
            "workers": 1,
            "kind": kind,
            "chunks": chunks,
            "rows": rows,
            "retries": [],
            "unfinished": [],
        }
        self.records.append(self.record)

    def run(self, engine: ChunkEngine, job: Job, progress: bool = True) -> Tensor:
        values = torch.empty(len(job.plan))
        bar = tqdm(total=len(job.plan), desc="patching", unit="row", disable=not progress)
        for index, (_, rows) in enumerate(job.layout.chunks):
            values[rows] = engine.run_chunk(job, index)
            bar.update(len(rows))
        bar.close()
        self._done("plan", len(job.layout.chunks), len(job.plan))
        return values


_CURRENT: ContextVar[Any] = ContextVar("iclscope_executor", default=None)
_DEFAULT: list[Callable[[], PlanExecutor]] = [InProcess]


@contextmanager
def using(executor: Any):
    """Run every engine made inside the block (without an executor of its own) on
    ``executor``: how a run passes its executor to analyses that build their own engines."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


def current() -> Any:
    """The executor of the innermost :func:`using` block, or None outside every block."""
    return _CURRENT.get()


def set_default(factory: Callable[[], PlanExecutor]) -> None:
    """Make ``factory`` what an engine outside every :func:`using` block runs on."""
    _DEFAULT[0] = factory


def current_executor() -> PlanExecutor:
    """The executor of the innermost :func:`using` block, else a new default one."""
    return current() or _DEFAULT[0]()
