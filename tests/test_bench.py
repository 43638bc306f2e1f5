"""The benchmark command runs and reports every field; timings are printed, never asserted."""

from __future__ import annotations

import json

from interp.cli import main


def test_bench_patching_reports_all_fields(tiny_dirs, capsys):
    args = ["bench", "patching", "--model", tiny_dirs["llama"], "--json", "--repeats", "1",
            "--shots", "0"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for workload in ("A", "B"):
        r = result[workload]
        for key in ("speedup_vs_transformer_lens", "speedup_vs_nnsight", "hook_overhead",
                    "reuse_gain", "rows", "seconds", "max_abs_diff"):  # fmt: skip
            assert key in r
        assert r["max_abs_diff"] <= 1e-5  # all four methods computed the same patching
    assert result["B"]["rows"] > result["A"]["rows"] / 8
