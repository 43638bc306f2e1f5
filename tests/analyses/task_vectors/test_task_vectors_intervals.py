"""Intervals and prompt seeds of the task-vector run: the AIE bootstrap on cases small enough to
check by hand, every ``<key>_ci`` of a real run bracketing its number, ``--seeds`` giving
per-seed values that a one-seed run reproduces, and bad ``--seeds`` refused before any work."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from circuits.task_vectors.aie import indirect_effects, prompt_effects
from circuits.task_vectors.intervals import (
    accuracy_ci,
    head_effects,
    spread,
    stratified_mean_ci,
)
from interp.stats import bootstrap_ci, wilson_ci

TASK = "fn_copy_first"
TINY = [
    "run",
    "task-vectors",
    "--model",
    "organism",
    "--task",
    TASK,
    "--shots",
    "2",
    "--test-items",
    "8",
    "--te-prompts",
    "4",
    "--trials",
    "3",
    "--steps",
    "2",
    "--batch",
    "4",
    "--circuit-prompts",
    "0",
    "--no-shared",
]


def test_prompt_effects_keep_every_prompt_and_head():
    """Two prompts, two heads: IE = metric less that prompt's baseline; the AIE is their mean."""
    table = pd.DataFrame(
        {
            "prompt": [0, 0, 0, 1, 1, 1],
            "layer": [-1, 0, 0, -1, 0, 0],
            "head": [-1, 0, 1, -1, 0, 1],
            "metric": [0.1, 0.4, 0.1, 0.3, 0.5, 0.2],
        }
    )
    ie = prompt_effects(table)
    assert ie[["prompt", "layer", "head"]].values.tolist() == [
        [0, 0, 0],
        [0, 0, 1],
        [1, 0, 0],
        [1, 0, 1],
    ]
    assert ie.ie.tolist() == pytest.approx([0.3, 0.0, 0.2, -0.1])
    aie = indirect_effects(table).set_index("head")
    assert aie.aie.tolist() == pytest.approx([0.25, -0.05])
    assert aie.baseline.iloc[0] == pytest.approx(0.2)
    by = head_effects(ie.assign(task="t"), [(0, 1), (0, 0)])  # columns in the heads' order
    assert len(by) == 1 and np.allclose(by[0], [[0.0, 0.3], [-0.1, 0.2]])


def test_aie_bootstrap_by_hand():
    # one task: exactly interp.stats.bootstrap_ci, column by column
    x = np.array([[0.0, 0.2], [1.0, 0.2], [0.5, 0.2]])
    ci = stratified_mean_ci([x])
    assert ci[0].tolist() == list(bootstrap_ci(x[:, 0], seed=0))
    assert ci[1].tolist() == pytest.approx([0.2, 0.2])  # a constant effect has no spread
    # two prompts of 0 and 1: resampled means are 0, 0.5, 1 with 1/4, 1/2, 1/4
    assert stratified_mean_ci([np.array([0.0, 1.0])])[0].tolist() == [0.0, 1.0]
    # two tasks, each constant: the mean over tasks cannot move when each task's prompts are
    # resampled on their own (pooling the 8 prompts would let it move)
    both = stratified_mean_ci([np.zeros(4), np.ones(4)])
    assert both[0].tolist() == pytest.approx([0.5, 0.5])
    # A constant 1, B = (0, 0, 0, 3): B's resampled mean is 0 w.p. 0.32 and 3 w.p. 0.004,
    # so its 2.5% and 97.5% quantiles are 0 and 2.25, and the mean over tasks (1 + B) / 2
    # runs from 0.5 to 1.625
    ci = stratified_mean_ci([np.ones(3), np.array([0.0, 0.0, 0.0, 3.0])])
    assert ci[0].tolist() == pytest.approx([0.5, 1.625])
    again = stratified_mean_ci([np.ones(3), np.array([0.0, 0.0, 0.0, 3.0])])
    assert np.array_equal(ci, again)  # seeded


def test_gains_are_paired_per_item():
    """A method that hits exactly the items its baseline hits gains 0 with no spread, which an
    unpaired interval (two accuracies of 0.5 on 4 items) would not say."""
    from circuits.task_vectors.sections import targets

    same = [1, 0, 1, 0]
    rows = [
        {"task": t, "method": m, "prompt": p, "hit": h}
        for t in ("a", "b")
        for m in ("zero_shot", "icl", "fv", "tv", "soft_injection")
        for p, h in enumerate(same if m != "fv" else [1, 1, 1, 0])
    ]
    hits = pd.DataFrame(rows)
    per_task = {t: {m: 0.5 for m in ("zero_shot", "icl", "tv", "soft_injection")} for t in "ab"}
    for t in "ab":
        per_task[t]["fv"] = 0.75
    t = targets(per_task, icl_floor=0.5, hits=hits)
    assert t["soft_injection_minus_icl_ci"] == [0.0, 0.0]
    assert t["tv_minus_zero_shot_ci"] == [0.0, 0.0]
    # fv beats 0-shot on one item of four in each task: the gain is 0.25, resampled per item
    low, high = t["fv_minus_zero_shot_ci"]
    assert t["fv_minus_zero_shot"] == 0.25 and low < 0.25 < high and low >= 0.0


def test_mean_accuracy_interval():
    hits = pd.DataFrame(
        {
            "task": ["a"] * 4 + ["b"] * 4,
            "method": "fv",
            "prompt": list(range(4)) * 2,
            "hit": [1, 1, 1, 0, 1, 0, 0, 0],
        }
    )
    assert accuracy_ci(hits, "fv") == wilson_ci(4, 8)  # equal counts: the pooled accuracy
    uneven = hits.iloc[:7]  # a: 3/4, b: 0/3, mean 0.375, which no pooled count gives
    low, high = accuracy_ci(uneven, "fv")
    assert low < 0.375 < high and (low, high) != wilson_ci(3, 7)
    assert spread([0.5, 0.7, 0.6]) == {
        "values": [0.5, 0.7, 0.6],
        "mean": 0.6,
        "std": 0.1,
        "min": 0.5,
        "max": 0.7,
    }


def _run(main, out, *extra) -> tuple[dict, str]:
    assert main([*TINY, *extra, "--out", str(out)]) == 0
    run = next(out.iterdir())
    return json.loads((run / "summary.json").read_text()), run


def _brackets(value, ci):
    low, high = ci
    assert low <= value + 1e-9 and value <= high + 1e-9 and low < high, (value, ci)


def test_seeds_give_per_seed_values_a_single_seed_reproduces(tmp_path):
    from interp.cli import main

    two, run = _run(main, tmp_path / "two", "--seeds", "0,1")
    one, _ = _run(main, tmp_path / "one", "--seeds", "1")
    methods = ["zero_shot", "icl", "fv", "tv", "soft_injection"]
    # every headline number has its interval beside it, around it
    for m in methods:
        _brackets(two[m], two[f"{m}_ci"])
        assert two[f"{m}_ci"] == pytest.approx(list(wilson_ci(round(two[m] * 8), 8)), abs=1e-4)
        for task, accs in two["per_task"].items():
            _brackets(accs[m], two["per_task_ci"][task][m])
    assert len(two["top_heads_aie"]) == len(two["top_heads"]) == 10
    for value, ci in zip(two["top_heads_aie"], two["top_heads_aie_ci"]):
        assert ci[0] <= value <= ci[1]
    assert any(hi > lo for lo, hi in two["top_heads_aie_ci"])  # not all zero-width
    # per-seed values: the first seed's is the headline, the second is what --seeds 1 gives
    assert two["seeds"] == [0, 1] and one["seeds"] == [1]
    assert "zero_shot_by_seed" not in one  # one seed: no spread to report
    for m in methods:
        by = two[f"{m}_by_seed"]
        assert by["values"][0] == pytest.approx(two[m], abs=1e-4)
        assert by["values"][1] == pytest.approx(one[m], abs=1e-4)
        assert by["min"] <= by["mean"] <= by["max"]
    assert two["top_heads_by_seed"]["1"] == one["top_heads"]
    assert [b["values"][0] for b in two["top_heads_aie_by_seed"]] == pytest.approx(
        two["top_heads_aie"], abs=1e-4
    )
    assert two["per_task_by_seed"][TASK]["icl"]["values"][1] == pytest.approx(
        one["per_task"][TASK]["icl"], abs=1e-4
    )
    differ = [two[f"{m}_by_seed"]["values"] for m in methods]
    assert any(v[0] != v[1] for v in differ) or two["top_heads_by_seed"]["0"] != one["top_heads"]
    by_seed = pd.read_parquet(run / "accuracy_by_seed.parquet")
    assert set(by_seed.seed) == {0, 1} and len(by_seed) == 2 * len(methods)
    assert len(pd.read_parquet(run / "aie_by_prompt.parquet")) == 3 * 4 * 8  # prompts x heads
    report = (run / "report.md").read_text()
    assert "## Across prompt seeds" in report
    zs = two["zero_shot_ci"]
    assert f"{two['zero_shot']:.3f} [{zs[0]:.2f}, {zs[1]:.2f}]" in report
    figure = json.loads((run / "figures" / "aie_top_heads.json").read_text())
    assert figure["data"][0]["error_y"]["array"]  # the AIE bars carry their intervals
    bars = json.loads((run / "figures" / "accuracy.json").read_text())
    assert any("mean" in list(trace["x"]) for trace in bars["data"])
    _page(tmp_path / "two", run.name, two)


def _page(root, name, summary):
    """The explorer's page: the mean row with its interval, the top heads with theirs, and the
    per-seed table."""
    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from app.views import run_page

        run_page(st.session_state["root"], st.session_state["name"])

    at = AppTest.from_function(page, default_timeout=60)
    at.session_state["root"], at.session_state["name"] = str(root), name
    at.run()
    assert not at.exception
    tables = [df.value for df in at.dataframe]
    acc = next(t for t in tables if "soft_injection" in t.columns and "icl" in t.columns)
    low, high = summary["icl_ci"]
    assert acc.loc["mean", "icl"] == f"{summary['icl']:.3f} [{low:.2f}, {high:.2f}]"
    heads = next(t for t in tables if "AIE" in t.columns)
    assert len(heads) == 10 and (heads.low <= heads.AIE).all() and (heads.AIE <= heads.high).all()
    seeds = next(t for t in tables if "seed 1" in t.columns)
    assert seeds.loc["fv", "seed 1"] == summary["fv_by_seed"]["values"][1]


@pytest.mark.parametrize(
    "value, says",
    [
        ("a,b", "comma-separated list of integers"),
        ("", "needs integers >= 0"),
        ("-1,2", "needs integers >= 0"),
        ("0,0", "repeats a seed"),
    ],
)
def test_bad_seeds_are_refused_before_any_work(tmp_path, capsys, value, says):
    from interp.cli import main

    out = tmp_path / "bad"
    assert main([*TINY, f"--seeds={value}", "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert says in err and "--seeds 0,1,2" in err  # the problem and its fix
    assert not out.exists()
