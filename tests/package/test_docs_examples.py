"""The docs' Python examples run as written (the page on adding an analysis builds and runs a
whole analysis through the runner)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from interp.runs import load_run
from interp.runs.reports import STATIC_ENV

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def test_adding_an_analysis_example_runs(monkeypatch, tmp_path):
    monkeypatch.setenv(STATIC_ENV, "0")
    monkeypatch.setattr("tempfile.mkdtemp", lambda: str(tmp_path))
    blocks = python_blocks(DOCS / "adding-an-analysis.md")
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "adding-an-analysis.md", "exec"), namespace)
    run = load_run(namespace["path"])
    assert run.manifest["kind"] == "entropy" and run.manifest["status"] == "complete"
    table = run.tables["entropy"]
    assert isinstance(table, pd.DataFrame) and (table.entropy >= 0).all()
    layer, head = run.summary["lowest_entropy_head"]
    assert table.entropy.min() == table.query("layer == @layer and head == @head").entropy.iloc[0]
    assert (Path(namespace["path"]) / "figures" / "entropy.json").is_file()


def test_bring_your_own_task_example_runs():
    (block,) = python_blocks(DOCS / "bring-your-own-task.md")
    namespace: dict = {}
    exec(compile(block, "bring-your-own-task.md", "exec"), namespace)
    family = namespace["family"]
    assert family.kind == "classification" and family.labels == ("animal", "color")
    assert sum(family.origin.splits.values()) == 48
