"""Where a plan's chunks run: one after another here, or on the workers of a Ray cluster.

The engine turns a plan into a :class:`~interp.patching.engine.Job` (the source runs cached
once, the rows laid out in chunks of one forward pass each) and hands it to an executor, which
returns one metric value per plan row.

* :class:`LocalExecutor` runs the chunks in this process, in order.
* :class:`RayExecutor` ships the job to a pool of Ray actors, each holding the model once
  (loaded by its registry name or folder). The job goes into Ray's object store once, so the
  source runs are computed once and read by every worker; after that a task is a chunk number.
  Each chunk's values land at its rows' indices, so the table is the local engine's, row for
  row. A worker that dies (its process killed, its node lost) has its chunks sent to another
  worker, at most ``max_retries`` times per chunk, and is replaced; a run whose chunks cannot
  all finish raises :class:`ExecutorFailed` naming them.

Ray does the scheduling (placing actors on nodes, moving objects); this module only keeps each
worker busy and notices deaths. Every executor keeps a :attr:`record` of its last run (executor,
workers, retries, unfinished chunks) that run directories write into their manifest.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.errors import IclscopeError

if TYPE_CHECKING:
    from interp.patching.engine import Engine, Job

IN_FLIGHT = 2
"""Chunks queued per worker: the next one waits at the worker while the current one runs, so a
worker never idles for a round trip to the driver."""


class Executor(Protocol):
    """Runs a job's chunks on some engine(s) and returns one value per plan row."""

    record: dict[str, Any]

    def run(self, engine: Engine, job: Job, progress: bool = True) -> Tensor: ...


_CURRENT: ContextVar[Executor | None] = ContextVar("iclscope_executor", default=None)


@contextmanager
def using(executor: Executor | None):
    """Run every engine made inside the block (without an executor of its own) on
    ``executor``: how a run passes its executor to analyses that build their own engines."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


def default_executor() -> Executor:
    """The executor of the innermost :func:`using` block, else a new :class:`LocalExecutor`."""
    return _CURRENT.get() or LocalExecutor()


class ExecutorFailed(IclscopeError):
    """A run whose chunks did not all finish; ``record`` lists them (``unfinished``)."""

    def __init__(self, what: str, record: dict[str, Any], fix: str) -> None:
        super().__init__(what, fix=fix)
        self.record = record


class LocalExecutor:
    """Every chunk in this process, one after another (the engine's default)."""

    def __init__(self) -> None:
        self.record: dict[str, Any] = {"executor": "local", "workers": 1, "retries": []}

    def run(self, engine: Engine, job: Job, progress: bool = True) -> Tensor:
        values = torch.empty(len(job.plan))
        bar = tqdm(total=len(job.plan), desc="patching", unit="row", disable=not progress)
        for index, (_, rows) in enumerate(job.layout.chunks):
            values[rows] = engine.run_chunk(job, index)
            bar.update(len(rows))
        bar.close()
        self.record = {
            "executor": "local",
            "workers": 1,
            "chunks": len(job.layout.chunks),
            "retries": [],
            "unfinished": [],
        }
        return values


def import_ray():
    try:
        import ray
    except ImportError:
        raise IclscopeError(
            "the Ray executor needs Ray, which is not installed",
            fix="pip install 'iclscope[ray]' (ray==2.60.0), or use --executor local",
        ) from None
    return ray


MODELS_PER_WORKER = 2
"""Models a worker keeps loaded (the most recently used ones)."""


class _Worker:
    """One Ray actor: an engine per model, each model loaded once (by registry name or folder)
    on first use, and the job whose chunks it is running."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        self.engines: dict[tuple, Engine] = {}
        self.jobs: dict[str, Job] = {}

    def pid(self) -> int:
        return os.getpid()

    def _engine(self, model: tuple) -> Engine:
        from interp.models import load_model
        from interp.patching.engine import Engine

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
        import ray

        if key not in self.jobs:
            self.jobs = {key: ray.get(box[0])}  # one job at a time: the last one is dropped
        return self._engine(model).run_chunk(self.jobs[key], index).numpy()


_DEATHS = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ActorUnavailableError")
"""Ray errors that mean the worker (or its machine) is gone, not that the chunk is bad."""


class RayExecutor:
    """Runs chunks on ``workers`` Ray actors, each holding the model once.

    ``address``: ``None`` starts a Ray instance on this machine (or uses the one already
    started in this process); ``"auto"`` joins the cluster this machine is part of
    (``ray start``); ``"HOST:PORT"`` joins the cluster whose head is there.
    ``cpus_per_worker``: CPUs each actor asks Ray for and uses as torch threads (default: the
    cluster's CPUs shared out among the workers). ``max_retries``: how often one chunk may be
    sent to another worker after the worker running it died. The actors stay up between runs
    (the model is loaded once) until :meth:`close`.
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int = 2,
        max_retries: int = 3,
        cpus_per_worker: int | None = None,
        device: str | None = None,
        on_chunk=None,
    ) -> None:
        if workers < 1:
            raise IclscopeError(f"{workers} Ray workers", fix="use at least 1 worker")
        if max_retries < 0:
            raise IclscopeError(f"max_retries {max_retries} is negative", fix="use 0 or more")
        self.address, self.workers, self.max_retries = address, workers, max_retries
        self.cpus_per_worker, self.device = cpus_per_worker, device
        self.on_chunk = on_chunk
        """Called as ``on_chunk(executor, done)`` after each finished chunk (progress hooks)."""
        self.actors: list = []
        self._started = 0
        self.record: dict[str, Any] = {"executor": "ray", "workers": workers, "retries": []}

    # -- the pool ---------------------------------------------------------------------------
    def _connect(self) -> None:
        ray = import_ray()
        if ray.is_initialized():
            return
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
            )
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise IclscopeError(
                f"could not reach a Ray cluster at {self.address!r}: {err}".split("\n")[0],
                fix="start one with `ray start --head` and pass its address (HOST:PORT), "
                "'auto' on a cluster node, or leave --ray-address out to start one here",
            ) from None

    def _spawn(self) -> Any:
        ray = import_ray()
        cpus = self.cpus_per_worker or max(
            1, int(ray.cluster_resources().get("CPU", 1)) // self.workers
        )
        actor = (
            ray.remote(_Worker).options(num_cpus=cpus, max_restarts=0, max_task_retries=0)
        ).remote(cpus)
        self._started += 1
        return actor

    def start(self) -> None:
        """Connect and start the workers (a no-op while they are all up). Each loads a model at
        its first chunk on it and keeps it for later runs."""
        if len(self.actors) == self.workers:
            return
        self.close()
        self._connect()
        self._started = 0
        self.actors = [self._spawn() for _ in range(self.workers)]
        import_ray().get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        """Stop the workers (Ray itself stays up for the next executor)."""
        if self.actors:
            ray = import_ray()
            for actor in self.actors:
                ray.kill(actor)
        self.actors = []

    def pids(self) -> list[int]:
        """The process id of each worker (to watch or kill one, e.g. in a test); starts the
        workers if they are not up."""
        ray = import_ray()
        self.start()
        return ray.get([a.pid.remote() for a in self.actors])

    # -- a run ------------------------------------------------------------------------------
    def run(self, engine: Engine, job: Job, progress: bool = True) -> Tensor:
        ray = import_ray()
        self.start()
        model = engine.model
        device = self.device or ("cuda" if _on_cuda(model) else "cpu")
        spec = (model.cfg.name, model.backend, device)
        t0 = time.perf_counter()
        chunks = job.layout.chunks
        box, key = [ray.put(job)], uuid.uuid4().hex  # the source runs, shipped once
        values = torch.empty(len(job.plan))
        todo: deque[int] = deque(range(len(chunks)))
        attempts = [0] * len(chunks)
        retries: list[dict[str, Any]] = []
        failed: list[int] = []
        running: dict[Any, tuple[int, Any, int]] = {}  # task -> (chunk, actor, worker slot)
        load = {id(a): 0 for a in self.actors}
        replaced = 0
        bar = tqdm(total=len(job.plan), desc="patching (ray)", unit="row", disable=not progress)

        def submit() -> None:
            for slot, actor in sorted(enumerate(self.actors), key=lambda p: load[id(p[1])]):
                while todo and load[id(actor)] < IN_FLIGHT:
                    index = todo.popleft()
                    task = actor.run_chunk.remote(spec, key, box, index)
                    running[task] = (index, actor, slot)
                    load[id(actor)] += 1

        def record(unfinished: list[int]) -> dict[str, Any]:
            self.record = {
                "executor": "ray",
                "address": self.address or "local",
                "workers": self.workers,
                "workers_started": self._started,
                "workers_replaced": replaced,
                "max_retries": self.max_retries,
                "chunks": len(chunks),
                "retries": retries,
                "unfinished": sorted(unfinished),
                "seconds": round(time.perf_counter() - t0, 3),
            }
            return self.record

        done = 0
        submit()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            task = ready[0]
            index, actor, slot = running.pop(task)
            load[id(actor)] = max(0, load.get(id(actor), 0) - 1)
            try:
                result = ray.get(task)
            except Exception as err:  # noqa: BLE001 - sorted into deaths and real errors below
                if not _died(err):
                    bar.close()
                    self._cancel(running)
                    record([i for i, *_ in running.values()] + list(todo) + [index])
                    raise _cause(err) from None
                attempts[index] += 1
                retries.append(
                    {
                        "chunk": index,
                        "rows": len(chunks[index][1]),
                        "worker": slot,
                        "attempt": attempts[index],
                        "error": type(err).__name__,
                    }
                )
                if attempts[index] > self.max_retries:
                    failed.append(index)
                else:
                    todo.appendleft(index)
                if any(a is actor for a in self.actors):  # the first of its chunks to fail
                    spare = replaced < self.workers * self.max_retries
                    replaced += self._replace(actor, load, spare)
                if not self.actors:
                    break
                submit()
                continue
            values[chunks[index][1]] = torch.tensor(result)
            bar.update(len(chunks[index][1]))
            done += 1
            if self.on_chunk is not None:
                self.on_chunk(self, done)
            submit()
        bar.close()
        unfinished = failed + list(todo) + [i for i, *_ in running.values()]
        record(unfinished)
        if unfinished:
            raise ExecutorFailed(
                f"{len(unfinished)} of {len(chunks)} chunks did not finish on the Ray workers "
                f"(chunks {sorted(unfinished)[:20]}); {len(retries)} retries were spent",
                self.record,
                fix="check the workers' logs (`ray logs`) for why they died; raise "
                "--max-retries, or give each worker more memory (fewer --workers per machine, "
                "or a smaller --max-batch)",
            )
        return values

    def _slot(self, actor) -> int | None:
        return next((i for i, a in enumerate(self.actors) if a is actor), None)

    def _replace(self, dead, load: dict[int, int], spare: bool) -> int:
        """Drop a dead worker and, if ``spare`` (a run may replace ``max_retries`` workers per
        worker slot), start another in its place; 1 if one was started."""
        ray = import_ray()
        slot = self._slot(dead)
        ray.kill(dead)
        if not spare:
            del self.actors[slot]
            return 0
        fresh = self._spawn()
        self.actors[slot] = fresh
        load[id(fresh)] = 0
        return 1

    @staticmethod
    def _cancel(running: dict) -> None:
        ray = import_ray()
        for task in running:
            ray.cancel(task, force=False)

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _on_cuda(model) -> bool:
    hf = getattr(model, "hf_model", None)
    device = getattr(hf, "device", None)
    return device is not None and torch.device(device).type == "cuda"


def _died(err: Exception) -> bool:
    """Whether a task failed because its worker (or its machine) is gone."""
    return any(t.__name__ in _DEATHS for t in type(err).__mro__)


def _cause(err: Exception) -> Exception:
    """The error a chunk raised on its worker, as the driver would have raised it."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, Exception) else err
