"""The benchmark commands run and report every field; timings are printed, never asserted."""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports triton

from interp.cli import main  # noqa: E402


def test_bench_patching_reports_all_fields(tiny_dirs, capsys):
    args = [
        "bench",
        "patching",
        "--model",
        tiny_dirs["llama"],
        "--json",
        "--repeats",
        "1",
        "--shots",
        "0",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for workload in ("A", "B"):
        r = result[workload]
        for key in (
            "speedup_vs_transformer_lens",
            "speedup_vs_nnsight",
            "hook_overhead",
            "reuse_gain",
            "rows",
            "seconds",
            "max_abs_diff",
        ):
            assert key in r
        assert r["max_abs_diff"] <= 1e-5  # all four methods computed the same patching
    assert result["B"]["rows"] > result["A"]["rows"] / 8


def test_bench_patching_on_spread_positions_matches_transformer_lens_cells(tiny_dirs, capsys):
    from interp.bench.patching import spread_positions

    assert spread_positions(15, 5) == [0, 4, 7, 10, 14]
    assert spread_positions(4, 9) == [0, 1, 2, 3]
    assert spread_positions(6, 1) == [5]
    args = ["bench", "patching", "--model", tiny_dirs["llama"], "--json", "--repeats", "1"]
    assert main(args + ["--shots", "1", "--positions", "3", "--pairs", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    b = result["B"]
    assert result["A"]["pairs"] == 2 and result["A"]["rows"] == 2 * b["rows"] / 3
    assert b["positions"] == spread_positions(b["tokens"], 3) and len(b["positions"]) == 3
    cfg = json.load(open(f"{tiny_dirs['llama']}/config.json"))
    assert b["rows"] == cfg["num_hidden_layers"] * cfg["num_attention_heads"] * 3
    # TransformerLens ran the same cells through its index_df, in the same order as ours
    assert b["max_abs_diff"] <= 1e-5


def test_bench_kernels_runs_the_fused_kernel_and_checks_it(capsys, monkeypatch):
    # forced onto the Triton kernel (interpreted here) so the twin comparison means something
    monkeypatch.setenv("ICLSCOPE_KERNELS", "triton")
    args = [
        "bench",
        "kernels",
        "--device",
        "cpu",
        "--size",
        "tiny",
        "--batch",
        "2",
        "--positions",
        "4",
        "--repeats",
        "1",
        "--json",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    bandwidth = result["bandwidth"]
    assert bandwidth["kernel"] == "triton"
    for name in ("one_head", "all_heads"):
        assert bandwidth[name]["max_abs_diff_vs_twin"] == 0.0  # alpha 1: exact copies
        assert bandwidth[name]["gb_per_s"] > 0
    cost = result["hook_cost"]
    assert (cost["rows"], cost["positions"], cost["layers"]) == (2, 4, 2)
    assert math.isfinite(cost["hook_percent_of_forward"])


def test_bench_kernels_refuses_a_missing_gpu_and_unknown_sizes(capsys):
    import torch

    if not torch.cuda.is_available():
        assert main(["bench", "kernels", "--device", "cuda"]) != 0
        assert "no CUDA GPU" in capsys.readouterr().err
    assert main(["bench", "kernels", "--device", "cpu", "--size", "huge"]) != 0
    assert "'--size': Value error, 'huge' is not one of" in capsys.readouterr().err
