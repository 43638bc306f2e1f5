"""The atlas run's explorer page, driven with Streamlit's AppTest on a small hand-written atlas
(its tables as :mod:`circuits.atlas.schema` fixes them): one head's scores with their intervals
and roles, links to the runs behind them on that head, the run view on that head, and the
overlaps significant first."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from circuits.atlas.overlap import OVERLAP_COLUMNS
from circuits.atlas.page import report_overlap_text, source_links
from circuits.atlas.schema import SCORES
from interp.analysis import registry
from interp.runs.store import RunWriter

APP = str(Path(__file__).resolve().parents[2] / "app" / "explorer.py")
ATLAS = "atlas-20261203-100000-a7a5"
CIRCUIT = "circuit-20261203-090000-c1c1"
EVICTION = "eviction-20261203-080000-e0e0"
ATLAS_ENTRY = registry.AnalysisEntry(
    kind="atlas",
    title="Atlas",
    about="Every head's role scores from the other analyses, side by side.",
    analysis="circuits.atlas.analysis:AtlasAnalysis",
    page="circuits.atlas.page:atlas_view",
)
"""The atlas's registry entry as the page expects it (its real line is someone else's)."""


def heads_table(n_layers: int = 3, n_heads: int = 2) -> pd.DataFrame:
    """Every head with a score per schema column: forerunner and aie with intervals, retrieval
    without (NaN bounds), alpha not computed (NaN)."""
    rows = []
    for layer in range(n_layers):
        for head in range(n_heads):
            i = layer * n_heads + head
            row = {"layer": layer, "head": head, "depth": layer / (n_layers - 1)}
            row |= {score: math.nan for score in SCORES}
            row |= {f"{s}_{end}": math.nan for s in SCORES for end in ("low", "high")}
            row |= {"forerunner": 0.1 * i, "forerunner_low": 0.1 * i - 0.05}
            row |= {"forerunner_high": 0.1 * i + 0.05, "retrieval": 0.5 + 0.01 * i}
            row |= {"aie": 0.02 * i, "aie_low": 0.01 * i, "aie_high": 0.03 * i}
            rows.append(row)
    return pd.DataFrame(rows)


def roles_table() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("retrieval", 2, 1, 0.55, "top 2 by retrieval"),
            ("retrieval", 1, 0, 0.52, "top 2 by retrieval"),
            ("fv", 1, 0, 0.04, "top 1 by aie"),
        ],
        columns=["role", "layer", "head", "score", "rule"],
    )


def overlaps_table() -> pd.DataFrame:
    """Two pairs, the significant one second, so the page must reorder them."""
    return pd.DataFrame(
        [
            ("forerunner", "fv", 2, 1, 0, 0.33, 1.0, 1.0, ""),
            ("retrieval", "fv", 2, 1, 1, 0.33, 0.004, 0.008, "L1H0"),
        ],
        columns=OVERLAP_COLUMNS,
    )


def write_atlas_runs(root: Path, elsewhere: Path) -> dict[str, str]:
    """An atlas run under ``root`` that read a circuit run under ``root`` and an eviction run
    in ``elsewhere`` (outside the explorer's root); returns their ids by analysis."""
    with RunWriter(root, kind="circuit", model="smollm2", run_id=CIRCUIT, command="test") as w:
        step3 = heads_table()[["layer", "head"]].assign(label_acc=[0.1, 0.2, 0.9, 0.4, 0.5, 0.6])
        w.table("step3_heads", step3)
        w.table("edges", pd.DataFrame({"edge": ["a->b"], "drop": [0.1]}))  # no layer/head
    with RunWriter(elsewhere, kind="eviction", run_id=EVICTION, command="test") as w:
        w.summary({"rows": 0})
    with RunWriter(root, kind="atlas", model="smollm2", run_id=ATLAS, command="test") as w:
        w.table("heads", heads_table())
        w.table("roles", roles_table())
        w.table("overlaps", overlaps_table())
        grid = go.Figure(go.Heatmap(z=[[0, 1], [2, 0], [0, 1]]), layout={"title": "role grid"})
        w.figure("role_grid", grid)  # no overlap_upset: the page must do without it
        w.summary(
            {
                "model": "smollm2",
                "n_layers": 3,
                "n_heads": 2,
                "heads": 6,
                "runs": {
                    "circuit": {"run_id": CIRCUIT, "path": str(root / CIRCUIT), "reused": True},
                    "eviction": {
                        "run_id": EVICTION,
                        "path": str(elsewhere / EVICTION),
                        "reused": False,
                    },
                },
                "roles": {
                    "retrieval": {
                        "label": "retrieval heads",
                        "rule": "top 2 by retrieval",
                        "size": 2,
                    },
                    "fv": {"label": "function-vector heads", "rule": "top 1 by aie", "size": 1},
                },
            }
        )
        w.report(
            "# Atlas\n\nSix heads.\n\n## Shared heads\n\n"
            "- Retrieval heads and function-vector heads share L1H0 (p = 0.008).\n\n"
            "![Shared heads](figures/overlap_upset.svg)\n"
        )
    return {"atlas": ATLAS, "circuit": CIRCUIT, "eviction": EVICTION}


@pytest.fixture
def atlas_registered():
    """The atlas entry in the registry for this test only (the explorer routes by kind)."""
    before = registry.known_entry("atlas")
    registry.register(ATLAS_ENTRY)
    yield
    if before is None:
        registry._REGISTRY.pop("atlas", None)
    else:
        registry.register(before)


@pytest.fixture
def atlas_root(tmp_path, monkeypatch, atlas_registered) -> Path:
    root = tmp_path / "runs"
    write_atlas_runs(root, tmp_path / "elsewhere")
    monkeypatch.setenv("ICLSCOPE_RUNS", str(root))
    monkeypatch.setenv("ICLSCOPE_STATIC_FIGURES", "0")
    return root


def opened(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"page": "Runs", **query})
    at.run()
    assert not at.exception, at.exception
    return at


def frame(at: AppTest, index_name: str) -> pd.DataFrame:
    """The one dataframe on the page whose index is named ``index_name``."""
    found = [d.value for d in at.dataframe if d.value.index.name == index_name]
    assert len(found) == 1, [d.value.index.name for d in at.dataframe]
    return found[0]


def links(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown if "**circuit**" in m.value)


def test_the_head_picker_shows_scores_with_intervals_roles_and_links(atlas_root):
    at = opened(run=ATLAS)
    picker = at.selectbox(key="atlas_head")
    assert picker.options == ["L0H0", "L0H1", "L1H0", "L1H1", "L2H0", "L2H1"]
    assert picker.value == "L1H0"  # the first head in a role

    scores = frame(at, "score")
    assert list(scores.index[:3]) == ["forerunner", "retrieval", "label_assignment"]
    assert scores.loc["forerunner", "value"] == "0.2"  # L1H0 is head 2: 0.1 * 2
    assert scores.loc["forerunner", "95% interval"] == "[0.15, 0.25]"
    assert scores.loc["aie", "95% interval"] == "[0.02, 0.06]"
    assert scores.loc["retrieval", "value"] == "0.52"
    assert scores.loc["retrieval", "95% interval"] == ""  # NaN bounds: no interval
    assert scores.loc["alpha", "value"] == "—"  # a score the atlas could not compute
    roles = frame(at, "in role")
    assert roles.to_dict("index") == {
        "retrieval heads": {"score": "0.52", "rank": "2 of 2", "rule": "top 2 by retrieval"},
        "function-vector heads": {"score": "0.04", "rank": "1 of 1", "rule": "top 1 by aie"},
    }

    text = links(at)
    assert f"(?page=Runs&run={CIRCUIT}&head=L1H0)" in text
    assert "not under the explorer's runs root" in text and f"{EVICTION}`" in text
    assert str(atlas_root.parent / "elsewhere" / EVICTION) in text  # its path, shown

    at.selectbox(key="atlas_head").set_value("L0H1").run()
    assert frame(at, "score").loc["forerunner", "95% interval"] == "[0.05, 0.15]"
    assert not any(d.value.index.name == "in role" for d in at.dataframe)
    assert any(c.value == "L0H1 is in no role" for c in at.caption)
    assert "head=L0H1" in links(at) and "head=L1H0" not in links(at)


def test_the_address_s_head_is_picked_first(atlas_root):
    at = opened(run=ATLAS, head="L2H1")
    assert at.selectbox(key="atlas_head").value == "L2H1"
    assert list(frame(at, "in role").index) == ["retrieval heads"]


def test_the_role_grid_overlaps_and_report_sentences(atlas_root):
    at = opened(run=ATLAS)
    charts = at.get("plotly_chart")
    assert len(charts) == 1 and "role grid" in charts[0].proto.spec
    assert any(i.value == "this run has no overlap figure" for i in at.info)
    overlaps = next(d.value for d in at.dataframe if "role_a" in d.value.columns)
    assert list(overlaps.role_a) == ["retrieval", "forerunner"]  # significant first
    assert list(overlaps.significant) == [True, False]
    said = [m.value for m in at.markdown if m.value.startswith("- Retrieval heads and")]
    assert len(said) == 1 and "figures/" not in said[0]  # the report's figure line left out


def test_the_run_view_shows_the_rows_of_the_addressed_head(atlas_root):
    at = opened(run=CIRCUIT, head="L1H0")
    assert [h.value for h in at.subheader if h.value.startswith("rows for")] == [
        "rows for head L1H0"
    ]
    rows = [d.value for d in at.dataframe if "label_acc" in d.value.columns]
    assert len(rows) == 1
    assert rows[0][["layer", "head", "label_acc"]].values.tolist() == [[1, 0, 0.9]]
    assert any(c.value == "step3_heads: 1 of 6 rows" for c in at.caption)
    assert not any(c.value.startswith("edges:") for c in at.caption)  # no layer/head columns

    at.button(key=f"{CIRCUIT}-every-head").click().run()
    assert "head" not in at.query_params
    assert not any(h.value.startswith("rows for") for h in at.subheader)


def test_the_run_view_without_a_head_or_with_a_bad_one(atlas_root):
    at = opened(run=CIRCUIT)
    assert not any(h.value.startswith("rows for") for h in at.subheader)
    at = opened(run=CIRCUIT, head="layer 1")
    assert any("names no head" in w.value for w in at.warning)
    assert not any("label_acc" in d.value.columns for d in at.dataframe)


def test_a_source_run_of_the_same_name_elsewhere_is_not_linked(tmp_path):
    """A run id under the root that is not the run the atlas read (another path) is named with
    the atlas's path, never linked: the link would open other numbers."""
    (tmp_path / "root" / CIRCUIT).mkdir(parents=True)
    summary = {"runs": {"circuit": {"run_id": CIRCUIT, "path": str(tmp_path / "old" / CIRCUIT)}}}
    (line,) = source_links(summary, tmp_path / "root", "L0H0")
    assert "](" not in line and str(tmp_path / "old" / CIRCUIT) in line
    summary["runs"]["circuit"]["path"] = str(tmp_path / "root" / CIRCUIT)
    (line,) = source_links(summary, tmp_path / "root", "L0H0")
    assert line.endswith(f"(?page=Runs&run={CIRCUIT}&head=L0H0)")


def test_the_report_s_overlap_section_only():
    report = "# Atlas\n\nSix heads.\n\n## Overlaps\n\nTwo roles share L1H0.\n\n## Caveats\n\nx"
    assert report_overlap_text(report) == "Two roles share L1H0."
    assert report_overlap_text("# Atlas\n\nno overlaps section") == ""
    assert report_overlap_text(None) == ""
