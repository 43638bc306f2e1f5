"""One Ray worker of the :class:`~interp.execution.ray.RayExecutor`: an actor that loads each
model (or what a :class:`~interp.execution.base.Work` needs) once and keeps the most recently
used ones, so a pool pays each model load once per worker rather than once per chunk."""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from interp.engine.batched import Engine

MODELS_PER_WORKER = 2
"""Models a worker keeps loaded (the most recently used ones)."""


class Worker:
    """One Ray actor: an engine per model, each model loaded once (by registry name or folder)
    on first use, and the job whose chunks it is running."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        self.engines: dict[tuple, Engine] = {}
        self.jobs: dict[str, Any] = {}
        self.loaded: dict[Hashable, Any] = {}

    def pid(self) -> int:
        return os.getpid()

    def _engine(self, model: tuple) -> Engine:
        from interp.engine.batched import Engine
        from interp.models import load_model

        if model not in self.engines:
            spec, backend, device = model
            while len(self.engines) >= MODELS_PER_WORKER:
                del self.engines[next(iter(self.engines))]
            self.engines[model] = Engine(load_model(spec, backend=backend, device=device))
        self.engines[model] = self.engines.pop(model)  # most recently used last
        return self.engines[model]

    def run_chunk(self, model: tuple, key: str, box: list, index: int):
        """Chunk ``index`` of job ``key`` on ``model`` (spec, backend, device). ``box`` holds
        the job's object reference (in a list, so Ray passes the reference itself and the
        worker fetches the job once, at its first chunk)."""
        return self._engine(model).run_chunk(self._job(key, box), index).numpy()

    def _job(self, key: str, box: list):
        import ray

        if key not in self.jobs:
            self.jobs = {key: ray.get(box[0])}  # one job at a time: the last one is dropped
        return self.jobs[key]

    def run_work(self, key: str, box: list, index: int):
        """Chunk ``index`` of the :class:`Work` in ``box``; what it loads is kept by its key
        (the most recent :data:`MODELS_PER_WORKER`), the way engines are kept by model."""
        work = self._job(key, box)
        if work.key not in self.loaded:
            while len(self.loaded) >= MODELS_PER_WORKER:
                del self.loaded[next(iter(self.loaded))]
            self.loaded[work.key] = work.load()
        self.loaded[work.key] = self.loaded.pop(work.key)  # most recently used last
        return work(self.loaded[work.key], index)
