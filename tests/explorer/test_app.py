"""The explorer's page logic, driven in-process with Streamlit's AppTest, and the formatting
rules every page shares (numbers, times, run ids, integer axes, 80-column tables)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import pytest
from streamlit.testing.v1 import AppTest

from app.format import headline, human_time, short_id, sig, summary_rows, tidy_table
from interp.cli import main
from interp.runs.reports import STATIC_ENV, decode_array, export_static, integer_axes
from interp.runs.store import RunWriter, load_run

APP = str(Path(__file__).resolve().parents[2] / "app" / "explorer.py")
SIG_DIGITS = re.compile(r"-?\d[\d,]*\.?\d*(?:e[+-]\d+)?")


@pytest.fixture(scope="module")
def runs_root(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STATIC_ENV, "0")  # the static copies are checked once, below
        args = [
            "demo",
            "--model",
            tiny_dirs["llama"],
            "--out",
            str(root),
            "--n",
            "4",
            "--no-pipeline",
        ]
        assert main(args) == 0
        for seed in ("0", "1"):  # two runs of a kind, to compare
            assert (
                main(
                    [
                        "run",
                        "patch",
                        "--model",
                        tiny_dirs["llama"],
                        "--prompts",
                        "2",
                        "--seed",
                        seed,
                        "--out",
                        str(root),
                    ]
                )
                == 0
            )
    broken = root / "demo-broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{half written")
    return root


def app(runs_root, monkeypatch) -> AppTest:
    monkeypatch.setenv("ICLSCOPE_RUNS", str(runs_root))
    return AppTest.from_file(APP, default_timeout=120).run()


def significant(text: str) -> int:
    """Significant digits of one formatted number."""
    mantissa = text.lstrip("-").replace(",", "").split("e")[0]
    if "." not in mantissa:
        mantissa = mantissa.rstrip("0") or "0"  # 1,300: two or three figures, not four
    return len(mantissa.replace(".", "").lstrip("0"))


def runs_list(at) -> pd.DataFrame:
    return at.table[0].value.reset_index()


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


def test_layer_and_head_axes_are_integers_with_a_tick_per_head():
    frame = pd.DataFrame({"layer": np.repeat(np.arange(3), 9), "head": np.tile(np.arange(9), 3)})
    frame["v"] = np.arange(27.0)
    fig = integer_axes(px.imshow(frame.pivot(index="layer", columns="head", values="v")))
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert (axis.tickmode, axis.dtick, axis.tickformat) == ("linear", 1, "d")
    curve = integer_axes(px.line(frame, x="layer", y="v", color="head"))
    assert curve.layout.xaxis.dtick == 1 and curve.layout.yaxis.dtick is None  # values stay
    words = integer_axes(px.line(x=["a", "b"], y=[1.0, 2.0]))
    assert words.layout.xaxis.tickmode is None
    table = tidy_table(pd.DataFrame({"layer": [0.0, 1.0], "head": [2.0, 3.0], "effect": [0.5, 1]}))
    assert str(table.layer.dtype) == "Int64" and table.effect.dtype == float


def test_figures_read_back_from_json_decode_their_arrays(runs_root):
    run = load_run(next(p for p in runs_root.iterdir() if p.name.startswith("patch-")))
    fig = run.figures["layer_by_head"]
    assert isinstance(fig.data[0].z, dict)  # plotly's typed form, as stored
    assert decode_array(fig.data[0].z).shape == (2, 8)  # tiny llama: 2 layers, 8 heads


# ---- the runs list -------------------------------------------------------------------------


def test_runs_list_shows_every_run_and_the_broken_one(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    assert not at.exception
    table = runs_list(at)
    assert len(table) == 4
    broken = table[table.run == "demo-broken"].iloc[0]
    assert broken.status == "broken" and "manifest.json" in broken.reason
    assert str(runs_root) not in broken.reason  # the reason names the file inside the root
    assert set(table.status) == {"complete", "broken"}
    assert all(re.fullmatch(r"(demo|patch)-[0-9a-f]{4}", r) for r in table.run if "broken" not in r)
    assert all(re.fullmatch(r"just now|\d+ min ago", t) for t in table.started if t != "—")
    numbers = [n for h in table.headline for n in SIG_DIGITS.findall(h.split(" ", 1)[-1])]
    assert numbers and all(significant(n) <= 3 for n in numbers), numbers


def test_the_newest_complete_run_opens_by_default(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    newest = runs_list(at).iloc[0]
    assert newest.run == "demo-broken"  # newest of all, but broken: not the one opened
    opened = at.selectbox(key="run_pick").value
    assert opened.startswith("patch-") and at.header[1].value == short_id(opened)
    assert not at.error


def test_opening_a_broken_run_shows_why_and_does_not_crash(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    at.selectbox(key="run_pick").set_value("demo-broken").run()
    assert not at.exception
    assert any("broken run" in e.value for e in at.error)


def test_filters_and_sort(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    at.multiselect(key="f_kind").select("patch").run()
    assert list(runs_list(at).kind) == ["patch", "patch"]
    at.multiselect(key="f_task").select("demo").run()
    assert runs_list(at).empty and any("no run matches" in i.value for i in at.info)
    at.multiselect(key="f_kind").unselect("patch").run()
    assert list(runs_list(at).kind) == ["demo"]
    at.multiselect(key="f_task").unselect("demo").run()
    at.multiselect(key="f_status").select("broken").run()
    assert list(runs_list(at).run) == ["demo-broken"]
    at.multiselect(key="f_status").unselect("broken").run()
    at.text_input(key="filter").input("demo").run()
    assert set(runs_list(at).kind) == {"demo", "—"}
    at.text_input(key="filter").input("").run()
    newest = list(runs_list(at).run)
    at.selectbox(key="sort").set_value("oldest first").run()
    assert list(runs_list(at).run) == newest[::-1]
    assert not at.exception


# ---- the run page --------------------------------------------------------------------------


def test_a_run_page_formats_its_summary_tables_and_report(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    patch = at.selectbox(key="run_pick").value
    assert patch.startswith("patch-")
    assert not at.exception
    assert any(h.value == "Top components" for h in at.subheader)
    summary = at.table[1].value
    assert re.fullmatch(r"L\d+H\d+", summary.loc["top_component", "value"])
    for measure in ("clean_baseline", "corrupted_baseline", "seconds"):
        assert significant(summary.loc[measure, "value"]) <= 3
    formats = {}
    for frame in at.dataframe:
        for column, config in json.loads(frame.proto.columns).items():
            formats.setdefault(column, set()).add(config.get("type_config", {}).get("format"))
    assert formats["layer"] == {"%d"} and formats["head"] == {"%d"}
    assert formats["effect"] == {"%.3g"} and formats["normalized_effect"] == {"%.3g"}
    report = next(m.value for m in at.markdown if "Patching sweep" in m.value)
    assert report.startswith("### Patching sweep")  # the report's title at section size
    assert not at.json or all("versions" in j.value for j in at.json)  # JSON only in details


def test_runs_that_did_not_complete_say_why(tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt), RunWriter(tmp_path, kind="patch", run_id="stopped"):
        raise KeyboardInterrupt
    with RunWriter(tmp_path, kind="patch", run_id="killed") as run:
        run.summary({"rows": 3})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    manifest = json.loads((run.path / "manifest.json").read_text())
    manifest["status"], manifest["process"]["pid"] = "running", gone.pid  # as SIGKILL leaves it
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    at = app(tmp_path, monkeypatch)
    table = runs_list(at)
    assert dict(zip(table.run, table.status)) == {"stopped": "interrupted", "killed": "stale"}
    for name, words in (("killed", "ended without finishing"), ("stopped", "was stopped")):
        at.selectbox(key="run_pick").set_value(name).run()
        assert not at.exception
        assert any(words in w.value for w in at.warning), [w.value for w in at.warning]


def test_paths_outside_the_root_are_refused(runs_root):
    def page():
        import streamlit as st

        from app.views import open_run

        root = st.session_state["root"]
        for name in ("../../etc", "/etc", "..", "demo-broken/../../x"):
            assert open_run(root, name) is None

    at = AppTest.from_function(page)
    at.session_state["root"] = str(runs_root)
    at.run()
    assert not at.exception
    assert len(at.error) == 4


# ---- the prompt view -----------------------------------------------------------------------


def test_the_demo_opens_its_prompt_in_the_prompt_view(runs_root, tiny_dirs, monkeypatch):
    at = app(runs_root, monkeypatch)
    demo = next(p.name for p in runs_root.iterdir() if p.name.startswith("demo-2"))
    at.selectbox(key="run_pick").set_value(demo).run()
    at.button(key="link_prompt").click().run()
    assert not at.exception
    assert at.sidebar.radio(key="page").value == "Prompt view"
    params = load_run(runs_root / demo).manifest["params"]
    assert at.text_input(key="model_spec").value == tiny_dirs["llama"]
    assert at.selectbox(key="task_pick").value == params["circuit_task"]
    assert at.slider(key="count").value == 4 and at.slider(key="count").label == "shots"
    html = " ".join(m.value for m in at.markdown)
    assert 'class="tok"' in html and 'title="s_q"' in html and 'title="y_0"' in html
    assert "role-chip" in html  # the legend
    iframe = at.get("iframe")[0].proto.srcdoc
    assert "CircuitsVis.ColoredTokens" in iframe and "https://" not in iframe.split("<script")[0]
    charts = {
        json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
    }
    grid = next(s for t, s in charts.items() if t.startswith("Every head"))
    z = np.asarray(decode_array(grid["data"][0]["z"]))
    assert z.shape == (2, 8) and (z >= 0).all() and (z <= 1 + 1e-5).all()
    best = np.unravel_index(z.argmax(), z.shape)  # the grid's brightest head opens first
    assert (at.slider(key="layer").value, at.slider(key="head").value) == tuple(map(int, best))
    at.slider(key="head").set_value(3).run()
    assert not at.exception and len(at.get("iframe")) == 1
    at.toggle(key="whole_pattern").set_value(True).run()  # circuitsvis's AttentionPattern
    assert not at.exception and "CircuitsVis.AttentionPattern" in at.get("iframe")[1].proto.srcdoc


def test_prompt_view_names_its_controls_and_refuses_a_typo(runs_root, monkeypatch):
    from interp.models.registry import MODELS

    at = app(runs_root, monkeypatch)
    at.sidebar.radio(key="page").set_value("Prompt view").run()
    assert at.selectbox(key="model_pick").options[: len(MODELS)] == list(MODELS)
    assert not at.exception
    at.selectbox(key="task_pick").set_value("ranking").run()
    assert at.slider(key="count").label == "documents" and at.slider(key="count").value == 10
    assert not at.exception
    at.selectbox(key="model_pick").set_value(at.selectbox(key="model_pick").options[-1]).run()
    at.text_input(key="model_spec").input("orgnism").run()
    assert not at.exception
    assert any("did you mean 'organism'" in e.value for e in at.error)


# ---- the compare view ----------------------------------------------------------------------


def test_compare_two_runs_of_a_kind_and_refuse_two_kinds(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    at.sidebar.radio(key="page").set_value("Compare").run()
    assert not at.exception
    a, b = at.selectbox(key="compare0").value, at.selectbox(key="compare1").value
    assert a.startswith("patch-") and b.startswith("patch-") and a != b  # same kind by default
    deltas = at.table[0].value
    assert list(deltas.columns)[-1] == "B − A"
    row = deltas.loc["clean_baseline"]
    assert float(row.iloc[2]) == pytest.approx(float(row.iloc[1]) - float(row.iloc[0]), abs=0.01)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    heat = [t for t in spec["data"] if t["type"] == "heatmap"]
    assert len(heat) == 3 and heat[0]["zmin"] == heat[1]["zmin"] and heat[2]["name"] == "B − A"
    demo = next(p.name for p in runs_root.iterdir() if p.name.startswith("demo-2"))
    at.selectbox(key="compare1").set_value(demo).run()
    assert not at.exception
    assert any("cannot be compared" in w.value for w in at.warning)
    assert len(at.table) == 2  # each run's summary


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
    assert list(fig.data[2].y) == [0.05, 0.25, 0.45] and fig.layout.xaxis.dtick == 1


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
