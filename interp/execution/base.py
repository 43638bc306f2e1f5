"""What every executor offers: a plan's chunks (:class:`~interp.engine.dispatch.PlanExecutor`)
and the chunks of any other analysis (:class:`Work`), and the error a run whose chunks did not
all finish raises."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

from interp.engine.dispatch import PlanExecutor
from interp.errors import IclscopeError


class Work(Protocol):
    """Chunks of an analysis that is not an engine plan, as an executor runs them.

    ``key`` names what :meth:`load` returns (e.g. ``("eager", "smollm2")``): a worker loads it
    once and keeps it for every chunk and later works with the same key. The object itself is
    shipped to each worker once (so it should carry only the prompts and settings its chunks
    need, never a loaded model)."""

    key: Hashable

    def load(self) -> Any:
        """What every chunk needs, loaded on the worker (the model, its tokenizer)."""

    def __call__(self, loaded: Any, index: int) -> Any:
        """Chunk ``index``'s result (picklable: it travels back from the worker)."""


Done = Callable[[int, Any], object]
"""Called as ``done(index, result)`` as each chunk of a :meth:`map` finishes (any order)."""


class Executor(PlanExecutor, Protocol):
    """Runs a job's chunks on some engine(s) and returns one value per plan row, or a
    :class:`Work`'s chunks and returns their results in order."""

    def map(
        self, work: Work, chunks: int, loaded: Any = None, done: Done | None = None
    ) -> list[Any]: ...


class ExecutorFailed(IclscopeError):
    """A run whose chunks did not all finish; ``record`` lists them (``unfinished``)."""

    def __init__(self, what: str, record: dict[str, Any], fix: str) -> None:
        super().__init__(what, fix=fix)
        self.record = record
