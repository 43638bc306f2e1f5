"""``iclscope bench scale``: one sweep on the local engine and on Ray with 1, 2 ... workers.

The sweep is every head of every layer patched over all positions on ``pairs`` prompt pairs,
with its baseline rows (``pairs x layers x heads + 2 pairs`` rows: 2,176 on ``smollm2`` with 8
pairs). Each contender first runs a small plan untimed, so the workers have loaded the model
and the fast path is built, then the full sweep ``repeats`` times (median reported). The
clock covers what a user waits for: caching the source runs, shipping them (Ray's object
store), every chunk, and gathering the table.

Ray runs on a cluster started here with this machine's CPUs; each Ray configuration gets its
own pool of workers (the CPUs shared out among them), one configuration at a time, so the
contenders are timed one after another rather than in turns: on a shared machine, read the
``load`` it reports. With as many workers as cores the work cannot go faster than the cores;
the number that matters on one machine is Ray's overhead over local at 1 worker.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch

from interp.bench.patching import BENCH_FAMILIES
from interp.engine.batched import Engine
from interp.engine.sweeps import head_sweep, with_baselines
from interp.execution import RayExecutor, import_ray
from interp.models import load_model
from interp.tasks.suite import build_pair_batches, default_family, label_mode


def _timed(run, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def bench_scale(
    model: str = "smollm2",
    workers: Sequence[int] = (1, 2),
    pairs: int = 8,
    shots: int = 4,
    repeats: int = 1,
    log=print,
    task: str | None = None,
) -> dict:
    """Seconds per sweep locally and on Ray per worker count, the ratios to local, and the
    largest difference of any row's metric from the local table (on ``task``, a
    classification family, or the model's own sentiment family)."""
    m = load_model(model)
    family = task or default_family(m.tokenizer, *BENCH_FAMILIES)
    builder = m.prompt_builder(labels=label_mode(family))
    clean, corrupted = build_pair_batches(builder, family, pairs, shots, 0)
    plan = with_baselines(head_sweep(m.cfg, range(pairs)), range(pairs))
    warm = with_baselines(head_sweep(m.cfg, [0]), [0])
    warm.rows = warm.rows[: 2 * m.cfg.n_heads]

    def sweep(engine: Engine):
        return lambda: engine.run(plan, clean, corrupted, progress=False)

    cores = len(os.sched_getaffinity(0))
    log(
        f"{model}: {len(plan)} rows ({pairs} pairs x {m.cfg.n_layers} layers x "
        f"{m.cfg.n_heads} heads + baselines), {cores} cores"
    )
    local = Engine(m)
    local.run(warm, clean, corrupted, progress=False)
    local_s, ref = _timed(sweep(local), repeats)
    log(f"local: {local_s:.2f} s")
    result = {
        "model": model,
        "family": family,
        "rows": len(plan),
        "pairs": pairs,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "repeats": repeats,
        "load_before": os.getloadavg(),
        "local_s": round(local_s, 3),
        "ray": {},
    }
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        # Ray runs its workers at niceness 15 so its own daemons stay responsive; on a machine
        # shared with other jobs that would time the scheduler's favour, not Ray's overhead
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(
            num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
        )
    try:
        for n in workers:
            with RayExecutor(workers=n) as executor:
                t0 = time.perf_counter()
                engine = Engine(m, executor=executor)
                engine.run(warm, clean, corrupted, progress=False)  # workers load the model
                startup = time.perf_counter() - t0
                seconds, table = _timed(sweep(engine), repeats)
            diff = float(np.abs(table.metric.to_numpy() - ref.metric.to_numpy()).max())
            same_rows = table.drop(columns="metric").equals(ref.drop(columns="metric"))
            result["ray"][str(n)] = {
                "seconds": round(seconds, 3),
                "over_local": round(seconds / local_s, 3),
                "startup_s": round(startup, 3),
                "chunks": executor.record["chunks"],
                "cpus_per_worker": max(1, cores // n),
                "max_abs_diff": diff,
                "same_rows_and_order": bool(same_rows),
            }
            log(
                f"ray, {n} worker(s): {seconds:.2f} s = {seconds / local_s:.2f}x local "
                f"(start-up {startup:.1f} s, max diff {diff:.1e})"
            )
    finally:
        if started:
            ray.shutdown()
    result["load_after"] = os.getloadavg()
    return result
