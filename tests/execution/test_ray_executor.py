"""The Ray executor on a real local Ray cluster (2 CPUs, 2 worker actors, no mocks): its tables
equal the local engine's (engine plans, and the eviction and block-relevance chunks that go
through ``Executor.map``), a worker killed mid-run has its chunks retried, and a run that
cannot finish is marked failed. The estimates and dry runs, which need no cluster, are in
test_executor_dry_runs.py.

One cluster and one pool of workers serve the whole module: Ray's start-up and each worker's
model load are paid once."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
import ray
from execution_helpers import QUIET, manifest, sweep

from interp.engine.batched import Engine
from interp.execution import ExecutorFailed, LocalExecutor, RayExecutor, using
from interp.runs.patch import run_patch

TOL = 1e-6


@pytest.fixture(scope="module")
def executor():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ex = RayExecutor(workers=2, max_retries=2)
    yield ex
    ex.close()
    ray.shutdown()


@pytest.mark.parametrize(
    "kind, fast",
    [("heads", True), ("resid", True), ("heads", False)],
    ids=["heads", "resid", "heads-hooked"],
)
def test_ray_table_equals_local(executor, model, kind, fast):
    plan, clean, corrupted = sweep(model, kind)
    local = Engine(model, max_batch=8, fast=fast).run(plan, clean, corrupted, progress=False)
    remote = Engine(model, max_batch=8, fast=fast, executor=executor)
    table = remote.run(plan, clean, corrupted, progress=False)
    record = executor.record
    assert record["executor"] == "ray" and record["workers"] == 2
    assert record["chunks"] >= 4 and record["retries"] == [] and record["unfinished"] == []
    # the same rows, labels and order; the same values to float noise
    pd.testing.assert_frame_equal(table.drop(columns="metric"), local.drop(columns="metric"))
    assert np.isfinite(table.metric).all()
    assert np.abs(table.metric.to_numpy() - local.metric.to_numpy()).max() <= TOL


def test_engines_made_inside_using_run_on_its_executor(executor, model):
    """How runs hand their executor to analyses that build their own engines (run circuit)."""
    plan, clean, corrupted = sweep(model, "heads")
    plan.rows = plan.rows[:12]
    with using(executor):
        engine = Engine(model, max_batch=4)
        assert engine.executor is executor
        table = engine.run(plan, clean, corrupted, progress=False)
    assert executor.record["chunks"] == 3
    assert isinstance(Engine(model).executor, LocalExecutor)  # outside the block: local again
    local = Engine(model, max_batch=4).run(plan, clean, corrupted, progress=False)
    assert np.abs(table.metric.to_numpy() - local.metric.to_numpy()).max() <= TOL


def killer(executor):
    """An ``on_chunk`` hook that SIGKILLs worker 0's process once the first chunk is back."""
    pid = executor.pids()[0]

    def kill(ex, done):
        if done == 1:
            os.kill(pid, signal.SIGKILL)

    return kill


def patch_run(out, executor, max_batch=4):
    return run_patch(
        out,
        "organism",
        "sentiment_semantic",
        "heads",
        "logit_diff",
        prompts=2,
        shots=2,
        max_batch=max_batch,
        log=QUIET,
        executor=executor,
    )


def test_killed_worker_chunks_are_retried(executor, tmp_path):
    executor.on_chunk = killer(executor)
    try:
        path = patch_run(tmp_path / "ray", executor)
    finally:
        executor.on_chunk = None
    m = manifest(path)
    assert m["status"] == "complete"
    record = m["executor"]
    assert record["executor"] == "ray" and record["workers"] == 2
    assert record["chunks"] >= 8  # 4 layers x 8 heads x 2 prompts + 4 baselines, 4 per chunk
    assert len(record["retries"]) >= 1 and record["workers_replaced"] == 1
    assert all(r["worker"] == 0 and r["attempt"] == 1 for r in record["retries"])
    assert record["unfinished"] == []
    # the retried chunks gave the same table as a run without Ray
    local = patch_run(tmp_path / "local", None)
    assert manifest(local)["executor"]["executor"] == "local"
    ours, ref = (pd.read_parquet(p / "results.parquet") for p in (path, local))
    pd.testing.assert_frame_equal(ours, ref, atol=TOL, rtol=0)


# -- every run command on the executor ----------------------------------------------------------
def small_task_vectors():
    from circuits.task_vectors import TaskVectors

    return TaskVectors(
        shots=2, test_items=4, te_prompts=4, trials=2, top_k=2, steps=2, batch=2, shared=False
    )


def test_task_vectors_sweeps_on_ray_equal_local_and_manifest_lists_every_plan(executor, tmp_path):
    """The AIE, FV and TV sweeps and the soft-injection evaluation run on the Ray workers with
    the local tables; the manifest keeps one record per engine run, not just the last."""
    from interp.runs.task_vectors import run_task_vectors

    def run(out, ex):
        return run_task_vectors(
            out, "organism", "fn_index_last", small_task_vectors(), 0, log=QUIET, executor=ex
        )

    ours, ref = run(tmp_path / "ray", executor), run(tmp_path / "local", None)
    record, local = manifest(ours)["executor"], manifest(ref)["executor"]
    assert record["executor"] == "ray" and local["executor"] == "local"
    # AIE, FV dev, FV test, TV dev, TV test, soft injection: six plans, all recorded
    assert len(record["runs"]) == len(local["runs"]) == 6
    assert [r["rows"] for r in record["runs"]] == [r["rows"] for r in local["runs"]]
    assert record["chunks"] == sum(r["chunks"] for r in record["runs"]) > 6
    assert record["retries"] == [] and record["unfinished"] == []
    for name in ("aie", "sweeps", "accuracy"):
        a, b = (pd.read_parquet(p / f"{name}.parquet") for p in (ours, ref))
        pd.testing.assert_frame_equal(a, b, atol=TOL, rtol=0)


def test_eviction_chunks_on_ray_equal_local(executor, tiny_dirs):
    """Eviction is no engine plan: its chunks of prompts go through ``Executor.map``, each
    worker loading the eager model (by folder) once; every table equals the local one."""
    import torch

    from circuits.eviction import EvictionEval, GateStack
    from circuits.eviction.prompts import eviction_settings, load_eager
    from interp.models.interface import ModelConfig

    hf, tokenizer, builder = load_eager(tiny_dirs["llama"])
    settings = eviction_settings(builder, "sentiment_arbitrary", 4, 6, (512,), 0)
    torch.manual_seed(0)
    gate = GateStack.for_model(ModelConfig.from_hf("tiny", hf.config), target_rate=0.5)
    evaluation = EvictionEval(chunk=2)
    local = evaluation.run(hf, settings, tokenizer, gate, log=QUIET)
    with using(executor):
        ours = evaluation.run(hf, settings, tokenizer, gate, log=QUIET)
    assert executor.record["kind"] == "work" and executor.record["chunks"] == 3
    assert executor.record["unfinished"] == []
    for name in ("curves", "by_head", "tokens"):
        a, b = getattr(ours, name), getattr(local, name)
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, atol=TOL, rtol=0)
    assert ours.gate.keys() == local.gate.keys()
    for setting, g in local.gate.items():
        assert ours.gate[setting] == pytest.approx(g, abs=TOL)


@pytest.fixture(scope="module")
def blockrank_folder(tiny_dirs, tmp_path_factory):
    """A BlockRank-trained folder (one step, its LoRA merged), as ``train blockrank`` leaves
    it: workers must load it by its path, and the run must read its trained layer."""
    import torch
    from transformers import AutoModelForCausalLM

    from circuits.block_relevance.train import BlockRankTrainer, save_folder
    from interp.organism.tokenizer import build_tokenizer

    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager")
    trainer = BlockRankTrainer(layer=1, cut=1, steps=1, batch=2, docs=5, lr=1e-2)
    layer, cut = trainer.train(hf, build_tokenizer(), "ranking", prepend_bos=True)
    record = trainer.record("tiny", "ranking", layer, cut)
    out = tmp_path_factory.mktemp("blockrank") / "trained"
    return str(save_folder(hf, build_tokenizer(), out, tiny_dirs["llama"], record))


def test_block_relevance_on_ray_equals_local_and_manifest_lists_it(
    executor, blockrank_folder, tmp_path
):
    """Block relevance's chunks of prompts go through ``Executor.map``: each worker loads the
    BlockRank folder by its path, and every table equals the local one."""
    from interp.runs.block_relevance import run_block_relevance

    def run(out, ex):
        return run_block_relevance(
            out, blockrank_folder, "ranking", prompts=6, docs=5, chunk=2, log=QUIET, executor=ex
        )

    ours, ref = run(tmp_path / "ray", executor), run(tmp_path / "local", None)
    record, local = manifest(ours)["executor"], manifest(ref)["executor"]
    assert record["executor"] == "ray" and local["executor"] == "local"
    # 6 prompts, then 3 on seen and 3 on unseen documents: 12 prompts in chunks of 2
    assert [r["kind"] for r in record["runs"]] == ["work"] and record["chunks"] == 6
    assert local["chunks"] == 6 and record["retries"] == [] and record["unfinished"] == []
    for name in ("heads", "position", "prompts"):
        a, b = (pd.read_parquet(p / f"{name}.parquet") for p in (ours, ref))
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, atol=TOL, rtol=0)
    summary = json.loads((ours / "summary.json").read_text())
    assert summary["trained_layer"] == 1  # read from the folder the workers loaded


def test_eviction_manifest_lists_the_executor_runs(executor, tiny_dirs, tmp_path):
    """``run eviction`` records its evaluation's executor in the manifest, like the engine
    runs do (the gate is left out: it trains here, not on the workers)."""
    from interp.runs.eviction import run_eviction

    path = run_eviction(
        tmp_path,
        tiny_dirs["llama"],
        "sentiment_arbitrary",
        shots=4,
        prompts=4,
        rates=(0.5,),
        methods=("streaming_llm", "random"),
        lengths=(512,),
        train=False,
        log=QUIET,
        chunk=2,
        executor=executor,
    )
    record = manifest(path)["executor"]
    assert record["executor"] == "ray" and record["workers"] == 2
    assert [r["kind"] for r in record["runs"]] == ["work"] and record["chunks"] == 2
    assert record["retries"] == [] and record["unfinished"] == []


def test_run_that_cannot_finish_is_marked_failed(executor, tmp_path):
    """With no retries left, the chunks of the killed worker cannot finish: the run fails,
    and its manifest names them. (Last in the module: it leaves one worker.)"""
    executor.on_chunk, executor.max_retries = killer(executor), 0
    try:
        with pytest.raises(ExecutorFailed) as err:
            patch_run(tmp_path, executor)
    finally:
        executor.on_chunk, executor.max_retries = None, 2
    (path,) = tmp_path.iterdir()
    m = manifest(path)
    assert m["status"] == "failed" and "did not finish" in m["error"]
    record = m["executor"]
    assert record["unfinished"] and record["workers_replaced"] == 0
    assert {r["chunk"] for r in record["retries"]} == set(record["unfinished"])
    assert record["unfinished"] == err.value.record["unfinished"]
    assert not (path / "results.parquet").exists()
