"""The explorer's page logic, driven in-process with Streamlit's AppTest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from interp.cli import main
from interp.runs.store import RunWriter

APP = str(Path(__file__).resolve().parent.parent / "app" / "explorer.py")


@pytest.fixture(scope="module")
def runs_root(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    args = ["demo", "--model", tiny_dirs["llama"], "--out", str(root), "--n", "4", "--no-pipeline"]
    assert main(args) == 0
    assert main(["run", "patch", "--model", tiny_dirs["llama"], "--prompts", "2",
                 "--out", str(root)]) == 0  # fmt: skip
    broken = root / "demo-broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{half written")
    return root


def app(runs_root, monkeypatch) -> AppTest:
    monkeypatch.setenv("ICLSCOPE_RUNS", str(runs_root))
    return AppTest.from_file(APP, default_timeout=120).run()


def test_runs_list_shows_every_run_and_the_broken_one(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    assert not at.exception
    table = at.table[0].value.reset_index()
    assert len(table) == 3
    broken = table[table.run == "demo-broken"].iloc[0]
    assert broken.status == "broken" and "manifest.json" in broken.reason
    assert set(table.status) == {"complete", "broken"}


def test_opening_a_broken_run_shows_why_and_does_not_crash(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    at.selectbox(key="run_pick").set_value("demo-broken").run()
    assert not at.exception
    assert any("broken run" in e.value for e in at.error)


def test_a_complete_run_shows_summary_and_report(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    patch = next(n for n in at.table[0].value.reset_index().run if n.startswith("patch-"))
    at.selectbox(key="run_pick").set_value(patch).run()
    assert not at.exception
    assert any(h.value == "Top components" for h in at.subheader)
    assert at.json  # the summary


def test_filter_narrows_the_list(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    at.text_input(key="filter").input("patch").run()
    assert list(at.table[0].value.reset_index().kind) == ["patch"]


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


def test_prompt_view_colours_tokens_and_plots_attention(runs_root, tiny_dirs, monkeypatch):
    at = app(runs_root, monkeypatch)
    at.sidebar.radio(key="page").set_value("Prompt view").run()
    at.text_input(key="model_spec").input(tiny_dirs["llama"]).run()
    assert not at.exception
    html = " ".join(m.value for m in at.markdown)
    assert 'class="tok"' in html and 'title="s_q"' in html and 'title="y_0"' in html
    at.slider(key="head").set_value(3).run()
    assert not at.exception


def test_compare_view(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    at.sidebar.radio(key="page").set_value("Compare").run()
    assert not at.exception
    assert len(at.selectbox) == 2


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
    table = at.table[0].value.reset_index()
    assert dict(zip(table.run, table.status)) == {"stopped": "interrupted", "killed": "stale"}
    for name, words in (("killed", "ended without finishing"), ("stopped", "was stopped")):
        at.selectbox(key="run_pick").set_value(name).run()
        assert not at.exception
        assert any(words in w.value for w in at.warning), [w.value for w in at.warning]


def test_prompt_view_refuses_a_model_typo_at_once(runs_root, monkeypatch):
    at = app(runs_root, monkeypatch)
    at.sidebar.radio(key="page").set_value("Prompt view").run()
    at.text_input(key="model_spec").input("orgnism").run()
    assert not at.exception
    assert any("did you mean 'organism'" in e.value for e in at.error)
