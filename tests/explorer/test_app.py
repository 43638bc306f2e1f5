"""The explorer's page logic, driven in-process with Streamlit's AppTest: the runs list, a
run page, runs that did not complete, the prompt view and the compare view. The formatting
rules every page shares are in test_app_format.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from explorer_helpers import runs_list, significant
from streamlit.testing.v1 import AppTest

from app.format import short_id
from interp.cli import main
from interp.runs.reports import STATIC_ENV, decode_array
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
    summary = at.table[0].value
    assert re.fullmatch(r"L\d+H\d+", summary.loc["top_component", "value"])
    for measure in ("clean_baseline", "corrupted_baseline", "seconds"):
        assert significant(summary.loc[measure, "value"]) <= 3
    report = next(m.value for m in at.markdown if "Patching sweep" in m.value)
    assert report.startswith("### Patching sweep")  # the report's title at section size
    # closed expanders draw nothing until opened: only the top components are a grid, no JSON
    assert len(at.dataframe) == 1 and not at.json and not at.code
    run = load_run(runs_root / patch)
    tables = list(run.tables)
    assert len(at.expander) == len(tables) + 2  # the summary, a table each, the run details
    for key in [f"open-{patch}-table-{t}" for t in tables] + [f"open-{patch}-details"]:
        at.session_state[key] = True
    at.run()
    assert not at.exception
    assert len(at.dataframe) == 1 + len(tables)  # every table, opened
    formats = {}
    for frame in at.dataframe:
        for column, config in json.loads(frame.proto.columns).items():
            formats.setdefault(column, set()).add(config.get("type_config", {}).get("format"))
    assert formats["layer"] == {"%d"} and formats["head"] == {"%d"}
    assert formats["effect"] == {"%.3g"} and formats["normalized_effect"] == {"%.3g"}
    assert at.json and all("versions" in j.value for j in at.json)  # JSON only in details
    assert at.code[0].value == " ".join(run.manifest["command"])  # the command that made it


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
    from streamlit.elements.lib import policies

    warned: list = []  # Streamlit's session-state warnings (a key set two ways) are logged
    monkeypatch.setattr(policies._LOGGER, "warning", lambda *a, **k: warned.append(a))
    at = app(runs_root, monkeypatch)
    demo = next(p.name for p in runs_root.iterdir() if p.name.startswith("demo-2"))
    at.selectbox(key="run_pick").set_value(demo).run()
    assert at.query_params.get("run") in (demo, [demo])
    at.button(key="link_prompt").click().run()
    assert not at.exception and not warned, warned
    assert at.sidebar.radio(key="page").value == "Prompt view"
    assert "run" not in at.query_params  # the address no longer names a run
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
