"""Estimates and dry runs, which need no Ray cluster: the estimate counts the sources a job
ships, ``--dry-run`` of every engine command and of the chunked ones (eviction, block
relevance) prints its plan and refuses a run over its memory budget, the circuit's manifest
lists every engine run, and the MLP width is the config's."""

from __future__ import annotations

import pytest
from execution_helpers import QUIET, manifest, sweep

from interp.cli import main
from interp.engine.batched import Engine
from interp.engine.memory import estimate


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
