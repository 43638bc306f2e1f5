"""The Ray executor: a plan's chunks, or a :class:`~interp.execution.base.Work`'s, on a pool
of Ray actors, each holding the model once (loaded by its registry name or folder).

The job goes into Ray's object store once, so the source runs are computed once and read by
every worker; after that a task is a chunk number. Each chunk's values land at its rows'
indices, so the table is the local engine's, row for row. A worker that dies (its process
killed, its node lost) has its chunks sent to another worker, at most ``max_retries`` times per
chunk, and is replaced; a run whose chunks cannot all finish raises
:class:`~interp.execution.base.ExecutorFailed` naming them. Ray does the scheduling (placing
actors on nodes, moving objects); this module only keeps each worker busy and notices deaths.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.errors import IclscopeError
from interp.execution.base import Done, ExecutorFailed, Work
from interp.execution.worker import Worker

if TYPE_CHECKING:
    from interp.engine.batched import Engine
    from interp.engine.layout import Job

IN_FLIGHT = 2
"""Chunks queued per worker: the next one waits at the worker while the current one runs, so a
worker never idles for a round trip to the driver."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise IclscopeError(
            "the Ray executor needs Ray, which is not installed",
            fix="pip install 'iclscope[ray]' (ray==2.60.0), or use --executor local",
        ) from None
    return ray


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
        self.records: list[dict[str, Any]] = []

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
            ray.remote(Worker).options(num_cpus=cpus, max_restarts=0, max_task_retries=0)
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
        chunks = job.layout.chunks
        box, key = [ray.put(job)], uuid.uuid4().hex  # the source runs, shipped once
        values = torch.empty(len(job.plan))
        bar = tqdm(total=len(job.plan), desc="patching (ray)", unit="row", disable=not progress)

        def land(index: int, result) -> None:
            values[chunks[index][1]] = torch.tensor(result)
            bar.update(len(chunks[index][1]))

        try:
            self._schedule(
                lambda actor, index: actor.run_chunk.remote(spec, key, box, index),
                [len(rows) for _, rows in chunks],
                land,
                "plan",
            )
        finally:
            bar.close()
        return values

    def map(
        self, work: Work, chunks: int, loaded: Any = None, done: Done | None = None
    ) -> list[Any]:
        """Every chunk of ``work`` on the workers (each loads ``work.load()`` once; ``loaded``,
        the caller's own copy, is not used here); the results in chunk order."""
        ray = import_ray()
        self.start()
        box, key = [ray.put(work)], uuid.uuid4().hex  # the work's prompts, shipped once
        results: list[Any] = [None] * chunks

        def land(index: int, result) -> None:
            results[index] = result
            if done is not None:
                done(index, result)

        self._schedule(
            lambda actor, index: actor.run_work.remote(key, box, index), [1] * chunks, land, "work"
        )
        return results

    def _schedule(self, submit_one, sizes: list[int], land, kind: str) -> None:
        """Run chunks ``0..len(sizes)-1``: ``submit_one(actor, index)`` starts one on a worker
        and returns its task, ``land(index, result)`` takes its result. Keeps every worker
        :data:`IN_FLIGHT` chunks deep, sends the chunks of a dead worker to the others (at most
        ``max_retries`` times each), replaces it, and records the run; raises
        :class:`ExecutorFailed` when some chunks cannot finish, and a chunk's own error as it
        was raised on its worker."""
        ray = import_ray()
        t0 = time.perf_counter()
        todo: deque[int] = deque(range(len(sizes)))
        attempts = [0] * len(sizes)
        retries: list[dict[str, Any]] = []
        failed: list[int] = []
        running: dict[Any, tuple[int, Any, int]] = {}  # task -> (chunk, actor, worker slot)
        load = {id(a): 0 for a in self.actors}
        replaced = 0

        def submit() -> None:
            for slot, actor in sorted(enumerate(self.actors), key=lambda p: load[id(p[1])]):
                while todo and load[id(actor)] < IN_FLIGHT:
                    index = todo.popleft()
                    running[submit_one(actor, index)] = (index, actor, slot)
                    load[id(actor)] += 1

        def record(unfinished: list[int]) -> dict[str, Any]:
            self.record = {
                "executor": "ray",
                "address": self.address or "local",
                "workers": self.workers,
                "kind": kind,
                "workers_started": self._started,
                "workers_replaced": replaced,
                "max_retries": self.max_retries,
                "chunks": len(sizes),
                "rows": sum(sizes),
                "retries": retries,
                "unfinished": sorted(unfinished),
                "seconds": round(time.perf_counter() - t0, 3),
            }
            self.records.append(self.record)
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
                    self._cancel(running)
                    record([i for i, *_ in running.values()] + list(todo) + [index])
                    raise _cause(err) from None
                attempts[index] += 1
                retries.append(
                    {
                        "chunk": index,
                        "rows": sizes[index],
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
            land(index, result)
            done += 1
            if self.on_chunk is not None:
                self.on_chunk(self, done)
            submit()
        unfinished = failed + list(todo) + [i for i, *_ in running.values()]
        record(unfinished)
        if unfinished:
            raise ExecutorFailed(
                f"{len(unfinished)} of {len(sizes)} chunks did not finish on the Ray workers "
                f"(chunks {sorted(unfinished)[:20]}); {len(retries)} retries were spent",
                self.record,
                fix="check the workers' logs (`ray logs`) for why they died; raise "
                "--max-retries, or give each worker more memory (fewer --workers per machine, "
                "or a smaller --max-batch)",
            )

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
