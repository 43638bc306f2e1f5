"""The Ray executor on a real local Ray cluster (2 CPUs, 2 worker actors, no mocks): its tables
equal the local engine's (engine plans, and the eviction and block-relevance chunks that go
through ``Executor.map``), a worker killed mid-run has its chunks retried, a run that cannot
finish is marked failed, and ``--dry-run`` refuses a run over its memory budget.

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
import torch

from interp.cli import main
from interp.engine.batched import Engine
from interp.engine.memory import estimate
from interp.engine.sweeps import head_sweep, resid_sweep, with_baselines
from interp.execution import ExecutorFailed, LocalExecutor, RayExecutor, using
from interp.models import load_model
from interp.runs.patch import run_patch
from interp.tasks.suite import build_pair_batches

TOL = 1e-6
QUIET = lambda *a: None  # noqa: E731


@pytest.fixture(scope="module", autouse=True)
def worker_threads():
    """The local reference computes with the torch threads each worker has (the cluster's 2
    CPUs shared by 2 workers: 1 each). A float32 sum split over another number of threads adds
    in another order, which moves a logit by a few ulps; with equal threads both sides add alike
    and the tables agree to TOL, whatever thread count an earlier test left behind."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def executor():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ex = RayExecutor(workers=2, max_retries=2)
    yield ex
    ex.close()
    ray.shutdown()


@pytest.fixture(scope="module", params=["organism", "tiny-llama"])
def model(request, tiny_dirs):
    # the organism by its registry name, the tiny Llama by its folder: workers load either
    return load_model("organism" if request.param == "organism" else tiny_dirs["llama"])


def sweep(model, kind: str):
    clean, corrupted = build_pair_batches(model.prompt_builder(), "sentiment_semantic", 2, 2, 0)
    if kind == "heads":
        plan = head_sweep(model.cfg, range(2))
    else:
        plan = resid_sweep(model.cfg, range(2), clean.tokens.shape[1])
    return with_baselines(plan, range(2)), clean, corrupted


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


def manifest(path):
    return json.loads((path / "manifest.json").read_text())


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


@pytest.mark.parametrize("kind", ["heads", "resid"])
def test_estimate_counts_the_sources_a_job_ships(model, kind):
    """The dry run's sources are the tensors a worker is sent: computed from shapes alone, they
    match the bytes of the job the engine builds; its chunks are the job's chunks."""
    plan, clean, corrupted = sweep(model, kind)
    engine = Engine(model, max_batch=8)
    est = estimate(engine, plan, clean, corrupted, workers=2)
    job = engine.prepare(plan, clean, corrupted)
    rec = job.base_rec
    tensors = [b.values for b in job.banks.values()] + list(rec.cache.values())
    tensors += rec.resid_pre + rec.keys + rec.values
    shipped = sum(t.numel() * t.element_size() for t in tensors) / 2**30
    assert est.sources_gb == pytest.approx(shipped, rel=1e-9)
    assert est.chunks == len(job.layout.chunks) and est.rows == len(plan)
    assert est.rows_per_chunk == max(len(rows) for _, rows in job.layout.chunks)
    assert est.forward_passes == est.chunks + 2
    weights = sum(p.numel() * p.element_size() for p in model.hf_model.parameters()) / 2**30
    assert est.model_gb == pytest.approx(2 * weights)  # the fast path's second copy


def test_dry_run_refuses_plan_over_budget(tmp_path, capsys):
    args = [
        "run",
        "patch",
        "--model",
        "organism",
        "--prompts",
        "2",
        "--shots",
        "2",
        "--out",
        str(tmp_path),
        "--dry-run",
    ]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "forward passes" in shown and "peak memory per worker" in shown
    assert "fits the budget" in shown
    # room for the model and the sources but not a whole chunk: refused, naming --max-batch
    assert main(args + ["--memory-budget", "0.012"]) == 2
    said = capsys.readouterr()
    assert "over the budget" in said.err and "--max-batch" in said.err
    # a budget below the model itself names the machine, not a knob of the plan
    assert main(args + ["--memory-budget", "0.004"]) == 2
    assert "the model alone" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # a dry run writes no run directory


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


def test_circuit_manifest_lists_every_engine_run(tmp_path):
    """(Local, so it needs no workers.) Every engine run made inside the circuit is in its
    manifest with its rows, and the totals add them up."""
    from interp.runs.circuit import run_circuit

    path = run_circuit(tmp_path, "organism", prompts=8, shots=2, log=QUIET, ablation_prompts=2)
    record = manifest(path)["executor"]
    assert record["executor"] == "local" and len(record["runs"]) >= 1
    assert record["chunks"] == sum(r["chunks"] for r in record["runs"])
    assert record["rows"] == sum(r["rows"] for r in record["runs"]) > 0


def cli(command, tmp_path, *extra):
    base = ["run", command, "--model", "organism", "--out", str(tmp_path)]
    return main(base + list(extra))


@pytest.mark.parametrize(
    "command, extra, budget",
    [
        ("circuit", ["--prompts", "8", "--shots", "2", "--ablation-prompts", "2"], 0.012),
        (
            "task-vectors",
            ["--task", "fn_index_last", "--test-items", "4", "--trials", "2", "--te-prompts", "4"],
            0.17,
        ),
    ],
)
def test_dry_run_of_every_engine_command(tmp_path, capsys, command, extra, budget):
    """``--dry-run`` prints rows, chunks, forward passes and the peak per worker, writes no
    run directory, and refuses a budget under the plans' needs naming the knob."""
    assert cli(command, tmp_path, *extra, "--dry-run") == 0
    shown = capsys.readouterr().out
    for words in ("rows in", "chunks", "forward passes", "peak memory per worker"):
        assert words in shown
    assert "fits the budget" in shown
    # room for the model and sources, not for a chunk of the largest plan
    assert cli(command, tmp_path, *extra, "--dry-run", "--memory-budget", str(budget)) == 2
    said = capsys.readouterr()
    assert "over the budget" in said.err and "--max-batch" in said.err
    # and the budget alone (no --dry-run) refuses the run before anything is written
    assert cli(command, tmp_path, *extra, "--memory-budget", "0.004") == 2
    assert "the model alone" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_mlp_width_is_the_configs():
    """smollm2's MLP is 1536 wide, not 4 x 576: the estimate reads the config."""
    from transformers import GPT2Config, LlamaConfig

    from interp.engine.batched import mlp_width, row_floats
    from interp.engine.memory import _hook_floats
    from interp.models.interface import ModelConfig

    llama = LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3
    )
    cfg = ModelConfig.from_hf("smollm2-shape", llama)
    assert cfg.d_mlp == mlp_width(cfg) == 1536
    assert _hook_floats(cfg, "blocks.3.mlp.hook_post", 10) == 10 * 1536
    assert row_floats(cfg, 10) == 10 * (2 * 576 + 1536 + 2 * 9 * 10 + cfg.d_vocab)
    gpt2 = ModelConfig.from_hf("gpt2-shape", GPT2Config(n_embd=64, n_head=4))
    assert gpt2.d_mlp is None and mlp_width(gpt2) == 4 * 64


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
    assert [r["kind"] for r in record["runs"]] == ["work"] and record["chunks"] == 3
    assert local["chunks"] == 3 and record["retries"] == [] and record["unfinished"] == []
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


def chunked_estimate(command, model):
    """The estimate the dry runs below print (the commands' defaults, ``--chunk 2``)."""
    from circuits.eviction import METHODS
    from circuits.eviction.analysis import eviction_estimate
    from interp.runs.block_relevance import block_relevance_estimate

    if command == "eviction":
        args = ("sentiment_arbitrary", 4, 4, (512, 1024), 0, "words", list(METHODS))
        return eviction_estimate(model, *args, (0.25, 0.5, 0.75), True, 2)
    return block_relevance_estimate(model, "ranking", 6, 5, 0, 2)


@pytest.mark.parametrize(
    "command, extra",
    [
        ("eviction", ["--task", "sentiment_arbitrary", "--shots", "4", "--prompts", "4"]),
        ("block-relevance", ["--task", "ranking", "--prompts", "6", "--docs", "5"]),
    ],
)
def test_dry_run_of_chunked_commands(tmp_path, capsys, tiny_dirs, command, extra):
    """Eviction and block relevance run no engine plan: ``--dry-run`` prints their prompts,
    chunks, forward passes and the peak per worker (model + one chunk), writes nothing, and
    refuses a budget with room for fewer prompts than a chunk, naming ``--chunk``."""
    args = ["run", command, "--model", tiny_dirs["llama"], "--out", str(tmp_path), *extra]
    args += ["--chunk", "2"]
    assert main(args + ["--dry-run"]) == 0
    shown = capsys.readouterr().out
    for words in ("prompts:", "chunks", "forward passes", "peak memory per worker"):
        assert words in shown
    assert "fits the budget" in shown
    est = chunked_estimate(command, tiny_dirs["llama"])
    assert f"forward passes: {est.forward_passes} " in shown and est.prompts_per_chunk == 2
    model_gb, chunk_gb = est.model_gb, est.chunk_gb
    room_for_one = model_gb + 0.75 * chunk_gb  # a chunk of 2 does not fit, 1 prompt does
    assert main(args + ["--dry-run", "--memory-budget", f"{room_for_one:.6f}"]) == 2
    said = capsys.readouterr()
    assert "over the budget" in said.err and "--chunk" in said.err
    assert main(args + ["--memory-budget", f"{model_gb / 2:.6f}"]) == 2  # no --dry-run
    assert "the model alone" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


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
