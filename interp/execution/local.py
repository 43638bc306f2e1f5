"""The local executor: every chunk in this process, one after another, and the executor a run
gets when it names none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interp.engine import dispatch
from interp.engine.dispatch import InProcess

if TYPE_CHECKING:
    from interp.execution.base import Done, Executor, Work


class LocalExecutor(InProcess):
    """Every chunk in this process, one after another (the engine's default): a plan's chunks
    as :class:`~interp.engine.dispatch.InProcess` runs them, and a :class:`Work`'s."""

    def map(
        self, work: Work, chunks: int, loaded: Any = None, done: Done | None = None
    ) -> list[Any]:
        """Every chunk of ``work`` here, in order, on ``loaded`` (what the caller already
        loaded; else ``work.load()``)."""
        loaded = work.load() if loaded is None else loaded
        results = []
        for index in range(chunks):
            results.append(work(loaded, index))
            if done is not None:
                done(index, results[-1])
        self._done("work", chunks, chunks)
        return results


def default_executor() -> Executor:
    """The executor of the innermost :func:`~interp.engine.dispatch.using` block, else a new
    :class:`LocalExecutor`."""
    return dispatch.current() or LocalExecutor()


# engines made outside every ``using`` block run on a fresh local executor, which can also map
dispatch.set_default(LocalExecutor)
