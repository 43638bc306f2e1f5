"""The explorer's first page (the runs list, with the newest complete run below it) imports only
what it shows: never torch or transformers, which only the prompt view needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from explorer_helpers import RUNS_LIST_HEAD, markdown_table, runs_list
from streamlit.testing.v1 import AppTest

from interp.runs.store import RunWriter

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app" / "explorer.py")

FIRST_PAGE = textwrap.dedent(
    """
    import json, sys
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
    print(json.dumps({
        "exception": [str(e.value) for e in at.exception],
        "lists": [m.value for m in at.markdown if m.value.startswith(sys.argv[2])],
        "headers": [h.value for h in at.header],
        "imported": sorted(m for m in ("torch", "transformers", "transformer_lens")
                           if m in sys.modules),
    }))
    """
)


def write_run(root: Path, run_id: str, value: float) -> None:
    with RunWriter(root, kind="patch", model="tiny", task="demo", run_id=run_id) as run:
        run.table("effects", pd.DataFrame({"layer": [0, 1], "head": [0, 1], "effect": [value, 0]}))
        run.summary({"clean_baseline": value})


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ICLSCOPE_STATIC_FIGURES", "0")
    root = tmp_path / "runs"
    root.mkdir()
    write_run(root, "patch-first", 0.25)
    write_run(root, "patch-second", 0.5)
    (root / "patch-broken").mkdir()
    (root / "patch-broken" / "manifest.json").write_text('{"status": "comp')
    return root


def test_the_runs_list_imports_neither_torch_nor_transformers(runs_root):
    env = {**os.environ, "ICLSCOPE_RUNS": str(runs_root), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", FIRST_PAGE, APP, RUNS_LIST_HEAD],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert page["exception"] == []
    assert len(page["lists"]) == 1
    runs = markdown_table(page["lists"][0])
    assert sorted(runs.run) == ["patch-broken", "patch-first", "patch-second"]
    assert sorted(runs.status) == ["broken", "complete", "complete"]
    assert page["headers"] == ["Runs", "patch-second"]  # the newest complete run opens below
    assert page["imported"] == [], page["imported"]


def test_the_list_shows_a_new_or_changed_run_on_the_next_rerun(runs_root, monkeypatch):
    monkeypatch.setenv("ICLSCOPE_RUNS", str(runs_root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert len(runs_list(at)) == 3
    write_run(runs_root, "patch-third", 0.75)
    (runs_root / "patch-broken" / "manifest.json").write_text(
        (runs_root / "patch-first" / "manifest.json").read_text()
    )
    at.run()
    assert not at.exception
    table = runs_list(at).set_index("run")
    assert len(table) == 4 and "broken" not in set(table.status)
    assert "clean_baseline 0.75" in table.loc["patch-third", "headline"]
    summary = runs_root / "patch-second" / "summary.json"
    summary.write_text(json.dumps({"clean_baseline": 0.125}))
    at.run()
    assert "clean_baseline 0.125" in runs_list(at).set_index("run").loc["patch-second", "headline"]
