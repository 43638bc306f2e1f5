"""Block relevance's 95% intervals (docs/analyses/block-relevance.md): precision@1's is Wilson's
on the prompts it was measured on, MRR's and nDCG@10's a seeded bootstrap over the same
prompts; every ``<key>_ci`` in the summary brackets its value, the heads table carries the
intervals of the reported rows, and the report and the by-layer figure show them."""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np
import pytest
import torch

from circuits.block_relevance.intervals import RESAMPLES, ci_pair, metric_ci
from circuits.block_relevance.metrics import prompt_metrics, ranking_metrics
from interp.stats import bootstrap_ci, wilson_ci

# ---------------------------------------------------------------------------------------------
# The pieces


def test_prompt_metrics_average_to_the_ranking_metrics():
    torch.manual_seed(0)
    relevance, gold = torch.randn(40, 3, 2, 12), torch.randint(0, 12, (40,))
    per_prompt = prompt_metrics(relevance, gold)
    means = ranking_metrics(relevance, gold)
    for key, value in means.items():
        assert per_prompt[key].shape == (40, 3, 2)
        assert torch.allclose(per_prompt[key].mean(0), value)
    assert set(per_prompt["p_at_1"].unique().tolist()) <= {0.0, 1.0}
    assert (per_prompt["ndcg10"][per_prompt["mrr"] < 1 / 10] == 0).all()  # ranked below 10th


def test_precision_gets_wilson_and_the_means_a_seeded_bootstrap():
    hits = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=float)
    assert metric_ci("p_at_1", hits) == wilson_ci(7, 10)
    rr = np.array([1, 0.5, 1 / 3, 1, 0.25, 1, 0.5, 1, 0.2, 1])
    ci = metric_ci("mrr", rr, seed=3)
    assert ci == bootstrap_ci(rr, resamples=RESAMPLES, seed=3)
    assert metric_ci("mrr", rr, seed=3) == ci  # seeded: the same interval again
    assert metric_ci("mrr", rr, seed=4) != ci
    assert ci[0] < rr.mean() < ci[1]
    assert metric_ci("ndcg10", np.full(8, 0.5)) == (0.5, 0.5)  # no spread, no width


def test_stored_intervals_are_rounded_outwards():
    assert ci_pair(0.123456, 0.654321) == [0.1234, 0.6544]
    assert ci_pair(0.25, 0.75) == [0.25, 0.75]  # exact values stay
    low, high = ci_pair(1 / 3, 1 / 3)
    assert low <= 1 / 3 <= high
    assert ci_pair(float("nan"), float("nan")) is None


# ---------------------------------------------------------------------------------------------
# A run


@pytest.fixture(scope="module")
def run(tiny_dirs, tmp_path_factory):
    from interp.runs import load_run
    from interp.runs.block_relevance import run_block_relevance

    root = tmp_path_factory.mktemp("br_ci")
    path = run_block_relevance(
        root, tiny_dirs["llama"], "ranking", prompts=12, docs=5, log=lambda _: None
    )
    return load_run(path), path


def _pairs(summary: dict):
    """Every (key, value, interval) of the summary, per-layer lists unrolled."""
    for key, ci in summary.items():
        if not key.endswith("_ci"):
            continue
        value = summary[key.removesuffix("_ci")]
        if key.removesuffix("_ci").endswith(("_raw", "_calibrated", "_block_sparse")) and (
            "_by_layer_" in key
        ):
            for layer, (v, c) in enumerate(zip(value, ci)):
                yield f"{key}[{layer}]", v, c
        else:
            yield key, value, ci


def test_every_interval_brackets_its_value(run):
    summary = run[0].summary
    pairs = list(_pairs(summary))
    keys = {k for k, _, _ in pairs}
    for key in ("p_at_1_best", "mrr_best", "ndcg10_best", "p_at_1_seen", "p_at_1_unseen"):
        assert f"{key}_ci" in keys
    assert any("mrr_by_layer_raw_ci" in k for k in keys)
    assert len(pairs) > 30
    for key, value, ci in pairs:
        assert ci is not None and value is not None, key
        low, high = ci
        assert 0.0 <= low <= value <= high <= 1.0, (key, value, ci)


def test_precision_intervals_are_wilson_on_the_prompts_measured(run):
    """The best head's precision@1 is measured on the 6 held-out prompts; the seen and unseen
    sets' on their own 6 each: the stored intervals are Wilson's on those counts."""
    summary = run[0].summary
    for key, n in (("p_at_1_best", 6), ("p_at_1_seen", 6), ("p_at_1_unseen", 6)):
        value = summary[key]
        want = ci_pair(*wilson_ci(round(value * n), n))
        assert summary[f"{key}_ci"] == want, key
    assert summary["p_at_1_decoded_ci"] == ci_pair(
        *wilson_ci(round(summary["p_at_1_decoded"] * 6), 6)
    )


def test_the_heads_table_holds_the_reported_rows_intervals(run):
    heads = run[0].tables["heads"]
    summary = run[0].summary
    mean = heads[(heads["head"] == -1) & (heads.split != "select")]
    assert mean.p_at_1_low.notna().all() and mean.mrr_high.notna().all()
    assert (mean.p_at_1_low <= mean.p_at_1).all() and (mean.p_at_1 <= mean.p_at_1_high).all()
    assert heads[heads.split == "select"].p_at_1_low.isna().all()
    layer, head = summary["best_layer"], summary["best_head"]
    best = heads[(heads.variant == "raw") & (heads.layer == layer) & (heads["head"] == head)]
    assert best[best.split != "select"].ndcg10_low.notna().all()
    others = heads[(heads["head"] >= 0) & ~((heads.layer == layer) & (heads["head"] == head))]
    picked = {tuple(v) for v in (summary["best_calibrated"], summary["best_block_sparse"])}
    others = others[[(r.layer, r["head"]) not in picked for _, r in others.iterrows()]]
    assert others.p_at_1_low.isna().all()  # only reported rows get an interval
    test = mean[(mean.split == "test") & (mean.variant == "raw")].sort_values("layer")
    assert summary["p_at_1_by_layer_raw"] == pytest.approx(test.p_at_1.tolist())


def _array(values) -> np.ndarray:
    """A figure's array as saved: a list, or plotly's base64 typed array."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)


def test_report_and_figure_show_the_intervals(run):
    loaded, path = run
    summary = loaded.summary
    report = (path / "report.md").read_text()
    low, high = summary["p_at_1_best_ci"]
    assert f"{summary['p_at_1_best']:.3f} [{low:.2f}, {high:.2f}]" in report
    assert re.search(r"\| \*\*best head L\d+H\d+\*\* \| [\d.]+ \[[\d.]+, [\d.]+\] \|", report)
    assert "Wilson" in report and f"{RESAMPLES} resamples" in report
    traces = loaded.figures["by_layer"].data
    assert traces and all(t.error_y.array is not None for t in traces)
    for trace in traces:
        up, down = _array(trace.error_y.array), _array(trace.error_y.arrayminus)
        assert (up >= 0).all() and (down >= 0).all() and (up + down).max() > 0


def test_the_summary_file_is_the_same_on_a_second_run(run, tiny_dirs, tmp_path):
    """Seeded: the same run gives the same intervals."""
    from interp.runs.block_relevance import run_block_relevance

    again = run_block_relevance(
        tmp_path, tiny_dirs["llama"], "ranking", prompts=12, docs=5, log=lambda _: None
    )
    first = json.loads((run[1] / "summary.json").read_text())
    second = json.loads((again / "summary.json").read_text())
    ci_keys = [k for k in first if k.endswith("_ci")]
    assert ci_keys and all(first[k] == second[k] for k in ci_keys)
    assert all(math.isfinite(v) for v in first["mrr_best_ci"])
