"""One timing rule for every benchmark: contenders in turns, medians, the device synchronised."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device | None = None
) -> tuple[dict[str, float], dict]:
    """Median seconds of each function, timed in turns after one untimed warm-up call each, so
    the slow drifts of a shared machine hit every contender alike (the ratios compare them).
    On a CUDA ``device`` each timing waits for the queued GPU work, which is the work."""
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else None
    outs = {name: fn() for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if sync:
                sync()
            start = time.perf_counter()
            outs[name] = fn()
            if sync:
                sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outs
