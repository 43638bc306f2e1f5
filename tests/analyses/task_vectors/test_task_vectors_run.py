"""The task-vectors run end to end on the organism (summary, alphas, the alpha-stability
table, the report and the explorer page), its stability options on the command line, and the
targets and head-agreement rules its summary uses."""

from __future__ import annotations

import json

import pytest
import torch

TASK = "fn_copy_first"


def test_stable_heads_and_agreement():
    from circuits.task_vectors import mean_jaccard, stable_heads

    a = torch.tensor([[0.95, 0.2], [0.99, 0.91]])
    b = torch.tensor([[0.95, 0.95], [0.5, 0.92]])
    assert stable_heads([a, b]) == [(0, 0), (1, 1)]
    assert mean_jaccard([a, b]) == pytest.approx(2 / 4)
    assert mean_jaccard([a]) is None
    assert mean_jaccard([torch.zeros(2, 2), torch.zeros(2, 2)]) == 1.0  # agree: none is high


def test_stability_options_parse_and_refuse(tmp_path, capsys):
    from interp.cli import checks, main

    assert checks.float_list("0.1, 0.5", "--stability-lrs") == [0.1, 0.5]
    assert checks.int_list("1,2", "--stability-seeds") == [1, 2]
    base = ["run", "task-vectors", "--model", "organism", "--task", TASK]
    for bad, says in (
        ("--stability-lrs=0.1,x", "comma-separated list of numbers"),
        ("--stability-lrs=0,0.5", "positive finite"),
        ("--stability-lrs=nan", "positive finite"),
        ("--stability-seeds=1,-2", "integers >= 0"),
        ("--stability-seeds=1.5", "comma-separated list of integers"),
        ("--init-std=-1", "--init-std"),
    ):
        capsys.readouterr()
        assert main([*base, bad, "--out", str(tmp_path / "bad")]) != 0
        assert says in capsys.readouterr().err, bad
    assert not (tmp_path / "bad").exists()
    dry = [*base, "--test-items", "8", "--stability-lrs", "0.5", "--stability-seeds", "1,2"]
    assert main([*dry, "--dry-run", "--out", str(tmp_path)]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "lr=0.5 seed=0" in printed and "lr=0.2 seed=2" in printed  # the extra fits' plans
    assert "4 fits per alpha" in printed and not any(tmp_path.iterdir())


def test_run_and_cli(tmp_path, capsys):
    from interp.cli import main

    args = [
        "run",
        "task-vectors",
        "--model",
        "organism",
        "--task",
        f"{TASK},fn_copy_last",
        "--shots",
        "2",
        "--test-items",
        "8",
        "--te-prompts",
        "6",
        "--trials",
        "2",
        "--steps",
        "3",
        "--lr",
        "1.0",
        "--batch",
        "4",
        "--stability-lrs",
        "1.5",
        "--stability-seeds",
        "1",
        "--circuit-prompts",
        "8",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    run = next(tmp_path.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    for key in (
        "zero_shot",
        "icl",
        "fv",
        "tv",
        "soft_injection",
        "per_task",
        "top_heads",
        "overlap_with_circuit_heads",
        "seconds",
    ):
        assert key in summary
    assert set(summary["per_task"]) == {TASK, "fn_copy_last"}
    alpha = torch.load(run / "alpha.pt")
    assert set(alpha) == {TASK, "fn_copy_last", "shared"}
    report = (run / "report.md").read_text()
    assert "AIE" in report and "## Alpha across learning rates and seeds" in report
    _alpha_stability(run, summary, alpha)
    capsys.readouterr()
    bad = main(
        [
            "run",
            "task-vectors",
            "--model",
            "organism",
            "--task",
            "nl_sentiment_natural",
            "--out",
            str(tmp_path / "bad"),
        ]
    )
    assert bad != 0 and "function" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before a run directory was made
    _explorer_page(tmp_path, run.name)


def _alpha_stability(run, summary, alpha):
    """One row per alpha x fit; stable heads are the intersection of every fit's > 0.9 set
    (recomputed here from the saved per-fit alphas), agreement their mean pairwise Jaccard."""
    import pandas as pd

    table = pd.read_parquet(run / "alpha_stability.parquet")
    fits = torch.load(run / "alpha_fits.pt")
    labels = ["lr=1 seed=0", "lr=1.5 seed=0", "lr=1 seed=1"]
    assert set(fits) == set(alpha) and all(list(f) == labels for f in fits.values())
    assert len(table) == 3 * 3 and set(zip(table.task, table.fit)) == {
        (t, f) for t in fits for f in labels
    }
    for task, by_fit in fits.items():
        assert torch.equal(by_fit[labels[0]], alpha[task])  # the main fit is the alpha
        highs = [{tuple(x) for x in (a > 0.9).nonzero().tolist()} for a in by_fit.values()]
        assert summary["alpha_stable_heads"][task] == sorted(
            list(h) for h in set.intersection(*highs)
        )
        pairs = [
            len(x & y) / max(len(x | y), 1) for i, x in enumerate(highs) for y in highs[i + 1 :]
        ]
        assert summary["alpha_fit_agreement"][task] == pytest.approx(sum(pairs) / 3, abs=1e-4)
        rows = table[table.task == task].set_index("fit")
        for label, h in zip(labels, highs):
            assert rows.above_0_9[label] == len(h)
    assert max(len(h) for h in summary["alpha_stable_heads"].values()) > 0  # not vacuous
    assert not torch.equal(fits[TASK]["lr=1 seed=0"], fits[TASK]["lr=1 seed=1"])  # seeds differ
    main = table[table.main & (table.task == TASK)].iloc[0]
    assert main.acc == pytest.approx(summary["per_task"][TASK]["soft_injection"])


def _explorer_page(root, name):
    """The explorer's task-vectors page in AppTest: table, heatmaps, the head picker."""
    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from app.views import run_page

        run_page(st.session_state["root"], st.session_state["name"])

    at = AppTest.from_function(page, default_timeout=60)
    at.session_state["root"], at.session_state["name"] = str(root), name
    at.run()
    assert not at.exception
    assert any("soft_injection" in str(df.value.columns.tolist()) for df in at.dataframe)
    at.selectbox(key="tv_alpha_task").set_value("shared").run()
    at.number_input(key="tv_layer").set_value(1).run()
    assert not at.exception
    heads = [df.value for df in at.dataframe if {"aie", "alpha"} <= set(df.value.columns)]
    assert len(heads) == 1 and "mean" in heads[0].index and "shared" in heads[0].index
    stability = [df.value for df in at.dataframe if "above_0_9" in df.value.columns]
    assert stability and all(len(df) == 9 for df in stability)  # the page's and the run's tables
    stable = [df.value for df in at.dataframe if "stable heads" in df.value.columns]
    assert len(stable) == 1 and "shared" in stable[0].index


def test_targets_count_only_tasks_where_icl_works():
    from interp.runs.task_vectors import targets

    row = lambda icl, si, fv, tv: {
        "icl": icl,
        "zero_shot": 0.0,
        "soft_injection": si,  # noqa: E731
        "fv": fv,
        "tv": tv,
    }
    t = targets(
        {
            "a": row(0.7, 0.8, 0.5, 0.6),
            "b": row(0.9, 0.8, 0.1, 0.2),
            "weak": row(0.3, 0.0, 0.0, 0.0),
        }
    )
    assert t["tasks"] == ["a", "b"]
    assert t["soft_injection_minus_icl"] == pytest.approx(0.0)
    assert t["soft_injection_worst_minus_icl"] == pytest.approx(-0.1)
    assert t["met"] == {"soft_injection": False, "fv": True, "tv": True}
