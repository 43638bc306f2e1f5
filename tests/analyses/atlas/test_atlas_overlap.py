"""The atlas's role sets, their overlaps, the sentences about them and the two figures, on a
made-up model of 4 layers × 3 heads whose answers are worked out by hand."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from circuits.atlas.figures import overlap_upset, role_grid
from circuits.atlas.overlap import (
    OVERLAP_COLUMNS,
    ROLE_COLUMNS,
    overlap_sentences,
    role_overlaps,
    role_sets,
)
from circuits.atlas.schema import Role

NAN = float("nan")
# (layer, head, forerunner, retrieval); rows deliberately out of order, so ties must be broken
# by the sort and not by where a row happens to sit
ROWS = [
    (1, 2, 0.7, 0.2),
    (0, 0, 0.9, 0.1),
    (1, 0, 0.7, 0.8),
    (0, 2, 0.7, NAN),
    (0, 1, 0.5, 0.6),
    (1, 1, NAN, 0.5),
    (2, 0, 0.1, 0.9),
    (2, 1, 0.2, 0.49),
    (2, 2, 0.3, 0.0),
    (3, 0, 0.0, 0.3),
    (3, 1, 0.05, 0.1),
    (3, 2, 0.15, 0.2),
]
TOTAL = len(ROWS)
ROLES = {
    "first": Role("forerunner", top=3, label="first heads"),
    "ret": Role("retrieval", threshold=0.5, label="ret heads"),
    "third": Role("forerunner", threshold=0.7, label="third heads"),
    "fv": Role("aie", top=2, label="fv heads"),  # no aie column
    "soft": Role("alpha", threshold=0.1, label="soft heads"),  # all NaN
}
LABELS = {name: role.label for name, role in ROLES.items()}


@pytest.fixture
def heads() -> pd.DataFrame:
    table = pd.DataFrame(ROWS, columns=["layer", "head", "forerunner", "retrieval"])
    table["depth"] = table["layer"] / 3
    table["alpha"] = NAN
    table["forerunner_low"] = table["forerunner"] - 0.05
    table["forerunner_high"] = table["forerunner"] + 0.05
    table.loc[table["layer"] == 3, ["forerunner_low", "forerunner_high"]] = NAN
    return table


@pytest.fixture
def roles(heads) -> pd.DataFrame:
    return role_sets(heads, ROLES)


def _members(roles: pd.DataFrame, role: str) -> list[tuple[int, int]]:
    rows = roles[roles["role"] == role]
    return list(zip(rows["layer"].tolist(), rows["head"].tolist()))


def test_role_sets_top_k_breaks_ties_by_layer_then_head(roles):
    # 0.9 first, then three heads at 0.7: L0H2 and L1H0 come before L1H2
    assert _members(roles, "first") == [(0, 0), (0, 2), (1, 0)]
    assert roles[roles["role"] == "first"]["score"].tolist() == pytest.approx([0.9, 0.7, 0.7])


def test_role_sets_threshold_keeps_scores_at_or_above_it_and_drops_nan(roles):
    # 0.5 is kept (at the cut), 0.49 is not, and L0H2's NaN never enters
    assert sorted(_members(roles, "ret")) == [(0, 1), (1, 0), (1, 1), (2, 0)]
    assert set(roles[roles["role"] == "ret"]["rule"]) == {"retrieval >= 0.5"}
    assert set(roles[roles["role"] == "first"]["rule"]) == {"top 3 by forerunner"}


def test_role_sets_skip_missing_and_all_nan_scores(roles, heads):
    assert list(roles.columns) == ROLE_COLUMNS
    assert list(pd.unique(roles["role"])) == ["first", "ret", "third"]
    assert roles["layer"].dtype.kind == "i" and roles["head"].dtype.kind == "i"
    empty = role_sets(heads[["layer", "head", "depth"]], ROLES)
    assert empty.empty and list(empty.columns) == ROLE_COLUMNS


def test_role_sets_top_k_never_takes_a_nan_head(heads):
    table = role_sets(heads, {"all": Role("forerunner", top=100)})
    assert len(table) == TOTAL - 1  # L1H1 has no forerunner score
    assert (1, 1) not in _members(table, "all")


def test_role_overlaps_numbers_by_hand(roles):
    table = role_overlaps(roles, TOTAL)
    assert list(table.columns) == OVERLAP_COLUMNS
    assert list(zip(table["role_a"], table["role_b"])) == [
        ("first", "ret"),
        ("first", "third"),
        ("ret", "third"),
    ]
    assert table["size_a"].tolist() == [3, 3, 4]
    assert table["size_b"].tolist() == [4, 4, 4]
    assert table["shared"].tolist() == [1, 3, 1]
    assert table["expected"].tolist() == pytest.approx([1.0, 1.0, 16 / 12])
    assert table["shared_heads"].tolist() == ["L1H0", "L0H0 L0H2 L1H0", "L1H0"]
    c = comb(12, 4)
    p = [1 - comb(9, 4) / c, comb(9, 1) / c, 1 - comb(8, 4) / c]
    assert table["p_value"].tolist() == pytest.approx(p)
    # Holm over 3 pairs: the smallest times 3, the others times 2 and 1, capped at 1
    assert table["p_adjusted"].tolist() == pytest.approx([1.0, 3 * 9 / c, 1.0])


def test_role_overlaps_of_nothing_is_an_empty_table(roles):
    assert list(role_overlaps(roles.iloc[:0], TOTAL).columns) == OVERLAP_COLUMNS
    assert role_overlaps(roles.iloc[:0], TOTAL).empty
    assert role_overlaps(pd.DataFrame(), TOTAL).empty
    assert role_overlaps(roles[roles["role"] == "ret"], TOTAL).empty  # one role: no pair
    with pytest.raises(ValueError):
        role_overlaps(roles, 5)  # 4 heads in one role, 4 in another, only 5 heads: impossible


def test_sentences_name_the_shared_heads_and_the_verdict(roles):
    table = role_overlaps(roles, TOTAL)
    sentences = overlap_sentences(table, LABELS)
    assert len(sentences) == 3
    # at alpha 0.05 nothing passes (27/495 = 0.055), so the order is by adjusted p
    assert all("not more than chance" in s for s in sentences)
    first = sentences[0]
    assert first.startswith("the first heads and the third heads share 3 heads")
    assert "L0H0, L0H2, L1H0" in first
    assert "1.0 expected by chance" in first
    assert "p = 0.018, 0.055 after Holm's correction over 3 pairs" in first


def test_sentences_say_no_heads_and_one_head():
    table = pd.DataFrame(
        [("a", "b", 2, 3, 0, 0.5, 1.0, 1.0, ""), ("a", "c", 2, 2, 1, 0.3, 0.3, 0.6, "L2H1")],
        columns=OVERLAP_COLUMNS,
    )
    sentences = overlap_sentences(table, {"a": "A heads", "b": "B heads"})
    assert sentences == [
        "the A heads and the c share 1 head, not more than chance (0.3 expected by chance; "
        "p = 0.3, 0.6 after Holm's correction over 2 pairs): L2H1.",
        "the A heads and the B heads share no heads, not more than chance (0.5 expected by "
        "chance; p = 1, 1 after Holm's correction over 2 pairs).",
    ]


def test_sentences_put_significant_pairs_first(roles):
    table = role_overlaps(roles, TOTAL).iloc[::-1].reset_index(drop=True)
    sentences = overlap_sentences(table, LABELS, alpha=0.1)
    assert sentences[0].startswith("the first heads and the third heads share 3 heads (")
    assert "not more than chance" not in sentences[0]
    assert all("not more than chance" in s for s in sentences[1:])
    assert overlap_sentences(table.iloc[:0], LABELS) == []


def _points_near(fig: go.Figure, layer: int, head: int) -> list[str]:
    """Names of the marker traces with a point inside the cell of (layer, head)."""
    names = []
    for trace in fig.data:
        if trace.type != "scatter":
            continue
        for x, y in zip(trace.x, trace.y):
            if abs(x - head) < 0.5 and abs(y - layer) < 0.5:
                names.append(trace.name)
    return names


def test_role_grid_draws_every_role_of_a_head(heads, roles):
    fig = role_grid(heads, roles, LABELS)
    scatters = [t for t in fig.data if t.type == "scatter"]
    assert [t.name for t in scatters] == ["first heads", "ret heads", "third heads"]
    assert [len(t.x) for t in scatters] == [3, 4, 4]
    # L1H0 is in all three roles, L0H0 in two, L2H2 in none
    assert sorted(_points_near(fig, 1, 0)) == ["first heads", "ret heads", "third heads"]
    assert sorted(_points_near(fig, 0, 0)) == ["first heads", "third heads"]
    assert _points_near(fig, 2, 2) == []
    # a head's markers sit apart, each role in its own place
    spots = {(round(x, 6), round(y, 6)) for t in scatters for x, y in zip(t.x, t.y)}
    assert len(spots) == 11
    assert len({t.marker.symbol for t in scatters}) == 3


def test_role_grid_cells_and_hover(heads, roles):
    fig = role_grid(heads, roles, LABELS)
    (cells,) = [t for t in fig.data if t.type == "heatmap"]
    z = np.asarray(cells.z, dtype=float)
    assert z.shape == (4, 3)
    assert z[2, 2] == 0 and z[1, 0] == 1 and z[0, 1] == 1  # grey for no role
    assert "0.25" in cells.colorscale[0][1]  # the no-role colour is faint
    text = np.asarray(cells.text, dtype=object)
    assert "forerunner: 0.7 [0.65, 0.75]" in text[1, 0]
    assert "retrieval: 0.8" in text[1, 0]
    assert "roles: first heads, ret heads, third heads" in text[1, 0]
    assert "forerunner: 0 " not in text[3, 0] and "[" not in text[3, 0]  # no interval there
    assert "forerunner: n/a" in text[1, 1]
    assert "roles: none" in text[2, 2]
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2]
    assert list(fig.layout.yaxis.tickvals) == [0, 1, 2, 3]


def test_upset_bars_are_the_exact_intersections(roles):
    fig = overlap_upset(roles, role_overlaps(roles, TOTAL), LABELS)
    top = [t for t in fig.data if t.type == "bar" and t.orientation != "h"]
    assert len(top) == 1
    # {ret}: L0H1 L1H1 L2H0; {first, third}: L0H0 L0H2; {third}: L1H2; all three: L1H0
    assert list(top[0].y) == [3, 2, 1, 1]
    assert "L0H1, L1H1, L2H0" in top[0].hovertext[0]
    assert "L1H0" in top[0].hovertext[3] and "p (Holm)" in top[0].hovertext[3]
    joined = [t for t in fig.data if t.type == "scatter" and t.mode == "lines+markers"]
    assert [len(t.y) for t in joined] == [1, 2, 1, 3]
    (sizes,) = [t for t in fig.data if t.type == "bar" and t.orientation == "h"]
    assert list(sizes.x) == [3, 4, 4]


def test_figures_of_an_empty_roles_table(heads, roles):
    empty = roles.iloc[:0]
    grid = role_grid(heads, empty, LABELS)
    assert [t.type for t in grid.data] == ["heatmap"]
    assert np.all(np.asarray(grid.data[0].z, dtype=float) == 0)
    assert any("no head" in a.text for a in grid.layout.annotations)
    for table in (empty, pd.DataFrame()):
        upset = overlap_upset(table, role_overlaps(table, TOTAL), LABELS)
        assert len(upset.data) == 0
        assert any("no head" in a.text for a in upset.layout.annotations)
    no_heads = role_grid(heads.iloc[:0], empty, {})
    assert any("no heads" in a.text for a in no_heads.layout.annotations)
