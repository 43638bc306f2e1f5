"""Helpers the run-store test modules share (imported by name: the test folders are no
packages, and pytest puts each test file's folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from interp.runs.store import RunWriter


def _df() -> pd.DataFrame:
    return pd.DataFrame({"layer": [0, 1, 2], "effect": [0.5, -1.25, 3.0], "name": ["a", "b", "c"]})


def _fig(y: list[float]) -> go.Figure:
    return go.Figure(go.Scatter(x=list(range(len(y))), y=y, name="trace"))


def _write_run(root: Path, run_id: str, *, figures: int = 0, report: bool = False) -> Path:
    with RunWriter(root, kind="demo", model="organism", task="copy", seed=0, run_id=run_id) as run:
        run.table("effects", _df())
        run.summary({"accuracy": 0.9})
        for i in range(figures):
            run.figure(f"fig{i}", _fig([1.0, 2.0 + i]))
        if report:
            run.report("# Report\n\nhello")
    return run.path
