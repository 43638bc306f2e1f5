"""What a report shows a reader, for every kind of run: each figure in the section that
discusses it (and report.md linking its static copy), heads in numeric order, tokens as text
(never a tokenizer's ``Ġ``, ``▁`` or ``Ċ``), one plotly.js for the whole page, and the findings
that deserve a warning."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from report_checks import (
    head_axes_out_of_order,
    raw_token_strings,
    report_sections,
    static_link_ok,
)
from test_every_kind import SMALLEST

from interp.analysis import get, run_analysis
from interp.runs import load_run
from interp.runs.reports import STATIC_ENV

SECTIONS = {
    "patch": {"layer_by": "Effect per component"},
    "circuit": {
        "step1": "Step 1",
        "step2": "Step 2",
        "step3": "Step 3",
        "ablation": "Ablations",
    },
    "task-vectors": {
        "aie": "Heads",
        "alpha": "Learned alpha",
        "accuracy": "Accuracy per task",
        "layer_sweeps": "Accuracy per task",
    },
    "eviction": {"accuracy_vs_rate": "", "heads_": "", "tokens_kept": ""},
    "block-relevance": {
        "p_at_1": "Precision@1",
        "by_layer": "Precision@1",
        "position_bias": "Position bias",
        "prompt_bars": "One held-out prompt",
    },
    "demo": {
        "icl_curve": "Held-out evaluation",
        "logit_lens": "One prompt",
        "query_attention": "One prompt",
    },
    "atlas": {"role_grid": "Roles", "overlap_upset": "Shared heads"},
}
"""Per kind, a figure's name prefix -> how the heading of the section that discusses it starts
(eviction's figures belong to the first setting, whose name the run picks: checked apart)."""


@pytest.fixture(scope="module", params=sorted(SMALLEST))
def smallest_run(request, tmp_path_factory):
    kind = request.param
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STATIC_ENV, "0")
        analysis = get(kind)
        task, values = SMALLEST[kind]
        out = tmp_path_factory.mktemp(kind)
        path = run_analysis(
            analysis,
            analysis.config_type(**values),
            out=out,
            model="organism",
            task=task,
            log=lambda _: None,
        )
    return kind, path


def test_every_figure_sits_in_the_section_that_discusses_it(smallest_run):
    kind, path = smallest_run
    run = load_run(path)
    placed = report_sections(run.report)
    assert set(placed) == set(run.figures), f"{kind}: figures the report does not show"
    assert "Figures" not in placed.values(), f"{kind}: figures left in a catch-all section"
    for name, heading in placed.items():
        assert static_link_ok(path, name)
        want = [h for prefix, h in SECTIONS[kind].items() if name.startswith(prefix)]
        assert want, f"{kind}: {name} has no expected section in this test"
        if kind == "eviction":
            setting = str(run.tables["curves"].setting.iloc[0])
            expected = "The gate against" if name == "heads_gate_evicted" else setting
            assert heading.startswith(expected), (name, heading)
        else:
            assert heading.startswith(want[0]), (name, heading)
    page = (path / "report.html").read_text()
    assert page.count("plotly.js v") == 1, "one plotly.js bundle for the whole page"
    order = [page.index(f'id="figure-{name}"') for name in placed]
    assert order == sorted(order), "the page draws the figures where report.md shows them"


def test_heads_in_numeric_order_and_tokens_as_text(smallest_run):
    kind, path = smallest_run
    run = load_run(path)
    for name, fig in run.figures.items():
        assert not head_axes_out_of_order(fig), (kind, name, head_axes_out_of_order(fig))
    assert not raw_token_strings(run.figures, run.tables), kind
    assert not raw_token_strings({}, {"report": pd.DataFrame({"text": [run.report]})})
    if kind == "patch":  # the baselines, one value per run, stand above the table
        table = run.report.split("## Top components")[1]
        assert "Same in every row: clean_baseline" in table
        assert "| clean_baseline" not in table and "corrupted_baseline |" not in table
    summary = json.loads((path / "summary.json").read_text())
    assert summary


def test_twelve_layers_of_heads_are_ordered_by_number():
    from circuits.demo.report import _look_figures
    from interp.runs.figures import layer_head_heatmap

    rng = np.random.default_rng(0)
    rows = [(layer, head, p) for layer in range(12) for head in range(11) for p in range(3)]
    attention = pd.DataFrame(rows, columns=["layer", "head", "position"]).assign(
        token=lambda d: d.position.map({0: "<s>", 1: "Ġnegative", 2: "Ċ"}),
        role="",
        weight=rng.random(len(rows)),
    )
    lens = pd.DataFrame({"layer": [0, 1], "label": ["Ġpositive", "▁negative"], "prob": [0.1, 0.2]})
    figs = _look_figures(lens, attention)
    rows_shown = list(figs["query_attention"].data[0].y)
    assert rows_shown[:3] == ["L0H0", "L0H1", "L0H2"] and rows_shown[11] == "L1H0"
    assert rows_shown[-1] == "L11H10" and not head_axes_out_of_order(figs["query_attention"])
    assert list(figs["query_attention"].data[0].x) == ["0:<s>", "1:␣negative", "2:↵"]
    assert not raw_token_strings(figs, {})
    table = attention.assign(layer=attention.layer.astype(str))  # text layers: worst case
    fig = layer_head_heatmap(table[table.position == 0], "weight", title="t")
    assert [str(v) for v in fig.data[0].y] == [str(i) for i in range(12)]


def test_layer_ranges_are_ordered_by_number():
    from interp.runs.figures import heatmap

    cols = ["0-0.25", "0-1", "0.25-0.5", "0.5-0.75", "0.75-1", "all"]
    grid = pd.DataFrame([np.linspace(0, 1, len(cols))], columns=cols, index=["xi_to_si"])
    fig = heatmap(grid, title="t", color="accuracy", origin=None)
    assert list(fig.data[0].x) == ["0-0.25", "0.25-0.5", "0.5-0.75", "0.75-1", "0-1", "all"]
