"""The formatting rules every explorer page shares (numbers, times, run ids, summaries,
integer axes, the compare view's overlay), the reports' static figures, and command-line
tables that fit 80 columns."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import plotly.express as px
import pytest
from explorer_helpers import markdown_table, significant

from app.format import headline, human_time, short_id, sig, summary_rows, tidy_table
from app.runs_list import runs_markdown
from interp.cli import main
from interp.runs.reports import STATIC_ENV, export_static, integer_axes

# ---- the formatting rules ------------------------------------------------------------------


def test_numbers_have_two_or_three_significant_figures():
    assert [sig(v) for v in (0.2101472169160843, 12.71879781049196, 0.005574494, 15.426)] == [
        "0.21",
        "12.7",
        "0.00557",
        "15.4",
    ]
    assert [sig(v) for v in (3, 1234567, 0.0, float("nan"), None, 2.5e-7, 1304.0001)] == [
        "3",
        "1,234,567",
        "0",
        "—",
        "—",
        "2.50e-07",
        "1,300",
    ]
    rng = np.random.default_rng(0)
    for x in rng.normal(0, 10, 200) * 10.0 ** rng.integers(-3, 3, 200):
        text = sig(x)
        assert significant(text) <= 3 and abs(float(text.replace(",", "")) - x) <= 0.005 * abs(x)


def test_run_ids_are_short_and_times_human():
    assert short_id("patch-20261129-155504-6c2a") == "patch-6c2a"
    assert short_id("demo-broken") == "demo-broken"
    now = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
    ago = {
        timedelta(seconds=10): "just now",
        timedelta(minutes=3): "3 min ago",
        timedelta(hours=5): "5 h ago",
        timedelta(days=1, hours=2): "yesterday",
        timedelta(days=4): "4 days ago",
        timedelta(days=40): "2026-10-20",
    }
    for delta, text in ago.items():
        assert human_time((now - delta).isoformat(), now) == text


def test_summaries_read_as_components_and_short_numbers():
    summary = {
        "clean_baseline": 0.2101472169160843,
        "rows": 36,
        "metric": "logit_diff",
        "top_component": {"layer": 1, "head": 3, "effect": 0.00557},
        "step3_best_head": [0, 7],
        "ablation_drop": {"xi_to_si": 0.123456},
        "top_components": [{"layer": 1, "head": 3}],
    }
    rows = dict(summary_rows(summary))
    assert rows == {
        "clean_baseline": "0.21",
        "rows": "36",
        "metric": "logit_diff",
        "top_component": "L1H3",
        "step3_best_head": "L0H7",
        "ablation_drop.xi_to_si": "0.123",
    }
    assert headline(summary, "patch") == (
        "clean_baseline 0.21, top_component L1H3, step3_best_head L0H7"
    )


def test_the_runs_list_shows_each_cell_as_written():
    """The list is a Markdown table: every cell escaped, so text that looks like Markdown,
    HTML, math, an emoji or a colour directive reads as written, and a ``|`` stays in its cell
    (what Chromium draws of these is checked by hand; the escapes are the same CommonMark's)."""
    tricky = [
        "a|b",
        "*x* _y_ `z` ~~s~~",
        "<b>bold</b> &amp; &lt;",
        "$1 and $2, $$x$$",
        ":smile: :red[text] :material/home:",
        "# no heading",
        "1. no list",
        "back\\slash\\",
        "two\nlines",
        "",
    ]
    frame = pd.DataFrame({"run": [f"r{i}" for i in range(len(tricky))], "reason": tricky})
    text = runs_markdown(frame)
    assert len(text.splitlines()) == 2 + len(tricky)  # a header, its delimiter, a row a run
    shown = markdown_table(text)
    assert list(shown.columns) == ["run", "reason"] and list(shown.run) == list(frame.run)
    assert list(shown.reason) == [" ".join(t.split()) for t in tricky]  # one line each


def test_layer_and_head_axes_are_integers_with_a_tick_per_head():
    frame = pd.DataFrame({"layer": np.repeat(np.arange(3), 9), "head": np.tile(np.arange(9), 3)})
    frame["v"] = np.arange(27.0)
    fig = integer_axes(px.imshow(frame.pivot(index="layer", columns="head", values="v")))
    assert fig.layout.xaxis.tickmode == "array" and fig.layout.xaxis.tickvals == tuple(range(9))
    assert fig.layout.yaxis.ticktext == ("0", "1", "2")
    curve = integer_axes(px.line(frame, x="layer", y="v", color="head"))
    assert curve.layout.xaxis.tickvals == (0, 1, 2) and curve.layout.yaxis.tickvals is None
    words = integer_axes(px.line(x=["a", "b"], y=[1.0, 2.0]))
    assert words.layout.xaxis.tickmode is None
    table = tidy_table(pd.DataFrame({"layer": [0.0, 1.0], "head": [2.0, 3.0], "effect": [0.5, 1]}))
    assert str(table.layer.dtype) == "Int64" and table.effect.dtype == float


def test_overlay_keeps_a_colour_per_series_and_dashes_run_b():
    from app.compare_view import overlay

    frame = pd.DataFrame(
        {
            "depth": [0, 1, 2] * 2,
            "acc": [0.1, 0.5, 0.9, 0.2, 0.3, 0.4],
            "view": ["s_q"] * 3 + ["x_q"] * 3,
        }
    )
    a = px.line(frame, x="depth", y="acc", color="view")
    b = px.line(frame.assign(acc=frame.acc / 2), x="depth", y="acc", color="view")
    fig = overlay(a, b, ("A one", "B two"))
    assert [t.name for t in fig.data] == [
        "A one · s_q",
        "A one · x_q",
        "B two · s_q",
        "B two · x_q",
    ]
    assert fig.data[0].line.color == fig.data[2].line.color != fig.data[1].line.color
    assert [t.line.dash for t in fig.data] == ["solid", "solid", "dash", "dash"]
    assert list(fig.data[2].y) == [0.05, 0.25, 0.45] and fig.layout.xaxis.tickvals == (0, 1, 2)


# ---- reports and the command line ----------------------------------------------------------


def test_reports_get_static_svg_figures(tiny_dirs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(STATIC_ENV, "1")
    assert (
        main(
            [
                "run",
                "patch",
                "--model",
                tiny_dirs["llama"],
                "--prompts",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    run = next(tmp_path.iterdir())
    svg = (run / "figures" / "layer_by_head.svg").read_text()
    assert svg.startswith("<svg") and "layer" in svg
    assert 'href="figures/layer_by_head.svg"' in (run / "report.html").read_text()
    assert f"next: open {run / 'report.html'}" in captured.err
    assert f"iclscope app --runs {tmp_path}" in captured.err
    assert captured.out.strip().splitlines()[-1] == str(run)  # scripts still read the path
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))
    notes: list[str] = []
    assert export_static(run, log=notes.append) == {}  # a missing browser never fails a run
    assert any("static figures not written" in n for n in notes), notes


def cells(text: str) -> set[str]:
    return {c.strip() for line in text.splitlines() for c in re.split(r"[│┃]", line)}


@pytest.mark.parametrize("model", [None, "organism"])
def test_tasks_fit_80_columns(model, monkeypatch, capsys):
    from interp.cli.app import console
    from interp.tasks.suite import TASK_FAMILIES

    monkeypatch.setattr(console, "width", 80)
    assert main(["tasks", *(["--model", model] if model else [])]) == 0
    out, err = capsys.readouterr()
    assert max(map(len, out.splitlines())) <= 80
    assert set(TASK_FAMILIES) <= cells(out)  # every name whole in its own cell, never cut
    assert ("buildable" in out) == (model is not None) and "next: iclscope eval" in err


def test_models_fit_80_columns_and_keep_every_fact_at_120():
    from rich.console import Console

    from interp.cli.info import models_table
    from interp.models.registry import MODELS

    rows = [
        {
            "name": e.name,
            "license": e.license,
            "source": e.source,
            "converted": False,
            "parameters": 134_515_008,
            "layers": 30,
            "heads": 9,
            "kv_heads": 3,
            "context": 8192,
        }
        for e in MODELS.values()
    ]
    for width in (80, 120):
        console = Console(width=width, record=True, file=open(os.devnull, "w"))
        console.print(models_table(rows, width))
        text = console.export_text()
        assert max(map(len, text.splitlines())) <= width
        assert set(MODELS) <= cells(text)
        assert ("license" in text) == (width >= 120)
