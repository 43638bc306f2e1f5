"""``bench aie``: every head's AIE as one engine plan against the published per-head loop.

Both compute the same table on the same shuffled-label prompts from the same task embedding;
the loop runs one forward pass per head and prompt (how the published code computes it), the
engine stacks every (head, prompt) row into batched passes that resume after the patched
layer at the last token. Loads are printed beside the times: on a shared machine they move.
"""

from __future__ import annotations

import os
import time

from circuits.task_vectors.aie import AverageIndirectEffect, aie_loop
from circuits.task_vectors.data import TaskSplit
from circuits.task_vectors.embeddings import task_embedding
from interp.engine.batched import Engine
from interp.models import load_model
from interp.tasks.suite import default_family


def bench_aie(
    model: str = "smollm2",
    task: str | None = None,
    trials: int = 4,
    shots: int = 8,
    te_prompts: int = 16,
    seed: int = 0,
    log=print,
) -> dict:
    m = load_model(model)
    task = task or default_family(m.tokenizer, "nl_antonym", "fn_copy_first")
    builder = m.prompt_builder(labels="first")
    split = TaskSplit.make(task, n_test=min(40, len(TaskSplit.make(task, 0).train) - 10), seed=seed)
    te = task_embedding(m, split.build(builder, split.sample_train(te_prompts, "te"), shots, "te"))
    batch = split.build(
        builder, split.sample_train(trials, "aie"), shots, "aie", shuffle_labels=True
    )
    engine = Engine(m)
    m.plain_model()  # load the engine's copy before the clock starts
    log(f"{m.cfg.n_layers * m.cfg.n_heads} heads x {trials} prompts of {task}: engine")
    t0 = time.perf_counter()
    fast = AverageIndirectEffect().run(m, te.heads, batch, engine)
    seconds_engine = time.perf_counter() - t0
    log("per-head loop")
    t0 = time.perf_counter()
    slow = aie_loop(m, te.heads, batch)
    seconds_loop = time.perf_counter() - t0
    return {
        "model": model,
        "task": task,
        "heads": len(fast),
        "trials": trials,
        "seconds_loop": round(seconds_loop, 3),
        "seconds_engine": round(seconds_engine, 3),
        "speedup": round(seconds_loop / seconds_engine, 2),
        "max_abs_diff": float((fast.aie - slow.aie).abs().max()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
