"""The atlas comparison on two small fake atlases whose depth structure is known by hand:
model A has 6 layers (depths 0, .2, .4, .6, .8, 1), model B 4 (depths 0, 1/3, 2/3, 1), two
heads per layer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from circuits.atlas.compare import (
    AtlasComparison,
    CompareConfig,
    compare_atlases,
    correlate,
    depth_bin,
)
from circuits.atlas.schema import ROLES, SCORES
from interp.analysis.base import Result
from interp.errors import IclscopeError
from interp.runs.store import RunWriter

HEADS_PER_LAYER = 2
LABEL_ASSIGNMENT = {"model-a": [1, 3, 0, 2, 4, 4], "model-b": [2, 1, 4, 3]}
"""Chosen so that over the bins both models fill the ranks disagree: rho 0 with 5 bins, 0.5
with 10 (worked out in the tests below)."""


def heads_table(model: str, layers: int) -> pd.DataFrame:
    """Every score of :data:`SCORES` with a known shape along depth."""
    rows = []
    for layer in range(layers):
        depth = layer / (layers - 1)
        for head in range(HEADS_PER_LAYER):
            row = {"layer": layer, "head": head, "depth": depth}
            row |= dict.fromkeys(SCORES, math.nan)
            row["aie"] = depth + 0.01 * head  # rises with depth in both models
            # rises in A, falls in B
            row["retrieval"] = depth if model == "model-a" else 1 - depth
            row["label_assignment"] = LABEL_ASSIGNMENT[model][layer]
            if model == "model-a":
                row["alpha"] = depth  # B leaves soft injection out: a column of NaN
            row["relevance"] = 0.5 if model == "model-a" else depth  # constant in A
            if model == "model-a" or layer < 2:
                row["gate_kept"] = depth  # B only at depths 0 and 1/3: too few shared bins
            row["aie_low"], row["aie_high"] = row["aie"] - 0.1, row["aie"] + 0.1
            rows.append(row)
    return pd.DataFrame(rows)


def roles_table(members: dict[str, list[tuple[int, int]]]) -> pd.DataFrame:
    rows = [
        {"role": role, "layer": layer, "head": head, "score": 1.0, "rule": ROLES[role].rule()}
        for role, heads in members.items()
        for layer, head in heads
    ]
    return pd.DataFrame(rows, columns=["role", "layer", "head", "score", "rule"])


ROLES_A = {"retrieval": [(3, 0), (4, 1), (5, 0)], "fv": [(1, 0), (2, 1)]}
ROLES_B = {"retrieval": [(0, 0), (1, 0), (1, 1)], "relevance": [(3, 0)]}


def write_atlas(
    root: Path,
    model: str,
    layers: int,
    roles: dict[str, list[tuple[int, int]]],
    kind: str = "atlas",
) -> Path:
    with RunWriter(root, kind=kind, model=model, run_id=f"{kind}-{model}", command="test") as w:
        w.table("heads", heads_table(model, layers))
        w.table("roles", roles_table(roles))
        w.table("overlaps", pd.DataFrame({"role_a": [], "role_b": [], "shared": []}))
        w.summary({"heads": layers * HEADS_PER_LAYER})
    return w.path


@pytest.fixture
def atlases(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write_atlas(tmp_path, "model-a", 6, ROLES_A),
        write_atlas(tmp_path, "model-b", 4, ROLES_B),
    )


def correlation_row(result: AtlasComparison, score: str) -> pd.Series:
    table = result.depth_correlation.set_index("score")
    return table.loc[score]


def test_is_a_result_with_its_tables_and_figures(atlases):
    result = compare_atlases(*atlases)
    assert isinstance(result, Result)
    assert set(result.tables()) == {"bands", "depth_correlation", "profiles"}
    assert set(result.figures()) == {"bands", "profiles"}
    assert list(result.bands.columns)[:3] == ["model", "role", "heads"]
    assert result.model_a == "model-a" and result.model_b == "model-b"


def test_role_depths_match_hand_values(atlases):
    bands = compare_atlases(*atlases).bands.set_index(["model", "role"])
    retrieval_a = bands.loc[("model-a", "retrieval")]
    # depths 0.6, 0.8, 1.0
    assert retrieval_a.heads == 3
    assert retrieval_a.depth_min == pytest.approx(0.6)
    assert retrieval_a.depth_q25 == pytest.approx(0.7)
    assert retrieval_a.depth_median == pytest.approx(0.8)
    assert retrieval_a.depth_q75 == pytest.approx(0.9)
    assert retrieval_a.depth_max == pytest.approx(1.0)
    # depths 0, 1/3, 1/3
    assert bands.loc[("model-b", "retrieval")].depth_median == pytest.approx(1 / 3)
    assert bands.loc[("model-a", "fv")].depth_median == pytest.approx(0.3)
    # a role in one model only still has a row in the other: no heads, no depth
    assert bands.loc[("model-b", "fv")].heads == 0
    assert math.isnan(bands.loc[("model-b", "fv")].depth_median)
    assert bands.loc[("model-a", "relevance")].heads == 0
    # roles in the schema's order
    assert list(bands.loc["model-a"].index) == ["retrieval", "fv", "relevance"]


def test_rising_in_both_gives_rho_one_and_opposite_gives_minus_one(atlases):
    result = compare_atlases(*atlases)
    aie = correlation_row(result, "aie")
    # 10 bins: A fills 0 2 4 6 8 9, B fills 0 3 6 9; both fill 0, 6, 9
    assert aie.bins == 3
    assert aie.rho == pytest.approx(1.0)
    # exact: of the 6 orderings of 3 bins, 2 reach |rho| = 1
    assert aie.p_value == pytest.approx(1 / 3)
    assert correlation_row(result, "retrieval").rho == pytest.approx(-1.0)
    # A's ranks over bins 0, 6, 9 are 1 2 3, B's 1 3 2: rho 1 - 6*2/(3*8) = 0.5
    assert correlation_row(result, "label_assignment").rho == pytest.approx(0.5)


def test_fewer_bins_share_more_depth(atlases):
    result = compare_atlases(*atlases, CompareConfig(bins=5))
    aie = correlation_row(result, "aie")
    # 5 bins: A fills 0-4, B fills 0 1 3 4
    assert aie.bins == 4
    assert aie.rho == pytest.approx(1.0)
    assert aie.p_value == pytest.approx(2 / 24)
    assert correlation_row(result, "retrieval").rho == pytest.approx(-1.0)
    # A's bins 0 1 3 4 hold 1 3 2 4, B's 2 1 4 3: squared rank gaps 10, rho 1 - 60/60 = 0
    label = correlation_row(result, "label_assignment")
    assert label.rho == pytest.approx(0.0)
    assert label.p_value == pytest.approx(1.0)


def test_profiles_average_each_bin(atlases):
    profiles = compare_atlases(*atlases, CompareConfig(bins=5)).profiles
    assert list(profiles.columns) == ["model", "score", "bin", "depth", "mean", "heads"]
    a_aie = profiles[(profiles.model == "model-a") & (profiles.score == "aie")].set_index("bin")
    # the last bin holds layers 4 and 5: depths 0.8 and 1.0, heads 0 and 1 add 0 and 0.01
    assert a_aie.loc[4, "mean"] == pytest.approx((0.8 + 0.81 + 1.0 + 1.01) / 4)
    assert a_aie.loc[4, "heads"] == 4
    assert a_aie.loc[4, "depth"] == pytest.approx(0.9)
    b_aie = profiles[(profiles.model == "model-b") & (profiles.score == "aie")].set_index("bin")
    assert b_aie.loc[2, "heads"] == 0 and math.isnan(b_aie.loc[2, "mean"])
    # a score the atlas left out has no profile
    assert not ((profiles.model == "model-b") & (profiles.score == "alpha")).any()
    assert ((profiles.model == "model-a") & (profiles.score == "alpha")).any()


def test_many_bins_take_spearmanrs_p_value_and_few_the_exact_one():
    rising = pd.Series(np.arange(12.0))
    noisy = pd.Series([0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10.0])
    many = correlate(rising, noisy, "a", "b")
    expected = spearmanr(rising, noisy)
    assert many["bins"] == 12
    assert many["rho"] == pytest.approx(expected.statistic)
    assert many["p_value"] == pytest.approx(expected.pvalue)
    # 4 bins in reverse: rho -1, reached by 2 of the 24 orderings
    few = correlate(pd.Series([1.0, 2, 3, 4]), pd.Series([4.0, 3, 2, 1]), "a", "b")
    assert few["rho"] == pytest.approx(-1.0)
    assert few["p_value"] == pytest.approx(2 / 24)
    assert few["p_value"] > spearmanr([1, 2, 3, 4], [4, 3, 2, 1]).pvalue


def test_depth_on_a_bin_edge_goes_to_the_bin_above():
    depths = pd.Series([0.0, 0.6, 0.7, 2 / 3, 1.0])
    assert depth_bin(depths, 10).tolist() == [0, 6, 7, 6, 9]


def test_scores_that_cannot_be_correlated_say_why(atlases):
    result = compare_atlases(*atlases)
    scores = result.summary()["scores"]
    assert scores["alpha"]["rho"] is None and "missing in model-b" in scores["alpha"]["note"]
    assert scores["relevance"]["rho"] is None
    assert "constant in model-a" in scores["relevance"]["note"]
    # B's gate_kept fills bins 0 and 3, A's 0 2 4 6 8 9: one shared bin
    assert scores["gate_kept"]["rho"] is None and scores["gate_kept"]["bins"] == 1
    assert "only 1 bin holds a value in both" in scores["gate_kept"]["note"]
    # scores neither model computed are left out; one missing in a model is not in the table
    assert "snapkv_kept" not in scores
    assert "alpha" not in set(result.depth_correlation.score)
    assert set(result.depth_correlation.score) == {
        "retrieval",
        "label_assignment",
        "aie",
        "relevance",
        "gate_kept",
    }


def test_summary_is_json_and_holds_both_medians(atlases):
    summary = compare_atlases(*atlases).summary()
    text = json.dumps(summary, allow_nan=False)  # summary.json has no NaN
    assert json.loads(text)["model_a"] == "model-a"
    assert summary["model_b"] == "model-b"
    assert summary["roles"]["retrieval"]["median_a"] == pytest.approx(0.8)
    assert summary["roles"]["retrieval"]["median_b"] == pytest.approx(1 / 3)
    assert summary["roles"]["fv"]["median_b"] is None
    assert summary["scores"]["aie"]["rho"] == pytest.approx(1.0)
    assert summary["scores"]["aie"]["bins"] == 3


def test_report_says_the_numbers_in_sentences(atlases):
    result = compare_atlases(*atlases, CompareConfig(bins=5))
    report = result.report(result.summary())
    assert (
        "Retrieval heads sit at relative depth 0.80 (median) in model-a and 0.33 in model-b"
        in report
    )
    assert (
        "Function-vector heads sit at relative depth 0.30 (median) in model-a; model-b has none"
        in report
    )
    assert "AIE profiles by depth correlate with Spearman rho 1.00 (p = 0.083, 4 bins); " in report
    assert "Retrieval profiles by depth correlate with Spearman rho -1.00" in report
    assert (
        "Label assignment profiles by depth correlate with Spearman rho 0.00 (p = 1, 4 bins); "
        "this is not significant at the 0.05 level" in report
    )
    assert "Alpha profiles by depth cannot be correlated: the score is missing in model-b" in report
    assert "Relevance profiles by depth cannot be correlated: the profile is constant" in report
    assert "Gate kept profiles by depth cannot be correlated: only 2 bins" in report


def test_bands_figure_draws_one_box_per_role_and_model(atlases):
    fig = compare_atlases(*atlases).figures()["bands"]
    boxes = {trace.name: trace for trace in fig.data}
    assert set(boxes) == {"model-a", "model-b"}
    a = boxes["model-a"]
    assert list(a.y) == ["retrieval heads", "function-vector heads"]
    assert np.allclose(a.median, [0.8, 0.3])
    assert a.orientation == "h"
    assert list(boxes["model-b"].y) == ["retrieval heads", "relevance heads"]


def test_profiles_figure_has_a_line_per_model_per_score(atlases):
    fig = compare_atlases(*atlases).figures()["profiles"]
    lines = {(trace.name, trace.xaxis) for trace in fig.data}
    models = {name for name, _ in lines}
    assert models == {"model-a", "model-b"}
    # A has 6 scores, B 5 (alpha is missing): one line each
    assert len(fig.data) == 11
    titles = {a.text for a in fig.layout.annotations}
    assert "aie (rho 1.00)" in titles and "alpha" in titles


def test_refuses_a_run_that_is_not_an_atlas(tmp_path):
    atlas = write_atlas(tmp_path, "model-a", 6, ROLES_A)
    circuit = write_atlas(tmp_path, "model-b", 4, ROLES_B, kind="circuit")
    with pytest.raises(IclscopeError, match="not an atlas run") as err:
        compare_atlases(atlas, circuit)
    assert err.value.fix and "atlas" in err.value.fix
    with pytest.raises(IclscopeError, match="manifest.json is missing"):
        compare_atlases(atlas, tmp_path)


def test_refuses_two_atlases_of_one_model(tmp_path):
    first = write_atlas(tmp_path / "one", "model-a", 6, ROLES_A)
    second = write_atlas(tmp_path / "two", "model-a", 6, ROLES_A)
    with pytest.raises(IclscopeError, match="both atlases of model-a") as err:
        compare_atlases(first, second)
    assert err.value.fix and "two different models" in err.value.fix


def test_refuses_an_atlas_without_its_tables(tmp_path):
    atlas = write_atlas(tmp_path, "model-a", 6, ROLES_A)
    with RunWriter(tmp_path, kind="atlas", model="model-b", run_id="unfinished", command="t"):
        pass
    with pytest.raises(IclscopeError, match="no heads.parquet") as err:
        compare_atlases(atlas, tmp_path / "unfinished")
    assert "wait for the atlas run" in err.value.fix


def test_config_refuses_no_bins():
    with pytest.raises(IclscopeError, match="bins must be at least 1"):
        CompareConfig(bins=0)


def test_atlases_without_roles_or_scores_still_compare(tmp_path):
    paths = []
    for model, layers in (("model-a", 6), ("model-b", 4)):
        heads = heads_table(model, layers)[["layer", "head", "depth"]]
        with RunWriter(tmp_path, kind="atlas", model=model, run_id=model, command="t") as w:
            w.table("heads", heads.assign(**dict.fromkeys(SCORES, math.nan)))
            w.table("roles", roles_table({}))
        paths.append(w.path)
    result = compare_atlases(*paths)
    assert result.bands.empty and result.depth_correlation.empty and result.profiles.empty
    report = result.report(result.summary())
    assert "Neither atlas has any role heads." in report
    assert "Neither atlas has any score to compare." in report
    assert set(result.figures()) == {"bands", "profiles"}
    assert list(result.bands.columns)[:3] == ["model", "role", "heads"]
