"""The analysis shape: the registry, the config, and the one runner every run goes through."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
import pytest

from interp.analysis import (
    Analysis,
    AnalysisConfig,
    Result,
    config_from,
    entries,
    entry,
    run_analysis,
)
from interp.analysis.base import Log
from interp.errors import IclscopeError
from interp.runs import load_run
from interp.runs.reports import STATIC_ENV


@dataclass
class CountConfig(AnalysisConfig):
    rows: int = 3
    label: str | None = None


class CountRun(Result):
    def __init__(self, rows: int, layers: int) -> None:
        self.rows, self.layers = rows, layers

    def tables(self):
        return {"counts": pd.DataFrame({"layer": range(self.rows), "value": range(self.rows)})}

    def figures(self):
        grid = [[float(i + j) for j in range(4)] for i in range(self.layers)]
        return {"grid": go.Figure(go.Heatmap(z=grid))}

    def params(self):
        return {"learned": self.layers}

    def artifacts(self):
        return {"note.txt": "hello\n"}

    def write_files(self, run_dir):
        (run_dir / "extra.bin").write_bytes(b"\x00\x01")

    def summary(self):
        return {"rows": self.rows}

    def report(self, summary):
        return f"# Count\n\n{summary['rows']} rows.\n"


class CountAnalysis(Analysis):
    kind = "count"
    config_type = CountConfig
    loads: list[str] = []

    def check(self, model, task, config):
        if config.rows > 100:
            raise IclscopeError("too many rows", fix="use --rows 100 or fewer")

    def load(self, model, config):
        self.loads.append(model)
        return {"layers": 5}

    def run(self, model, task, config, executor, *, log: Log = print):
        log(f"counting {config.rows}")
        assert executor is not None  # the runner makes one current
        return CountRun(config.rows, model["layers"])


def test_runner_writes_everything_a_result_knows(tmp_path, monkeypatch):
    monkeypatch.setenv(STATIC_ENV, "0")
    lines: list[str] = []
    path = run_analysis(
        CountAnalysis(),
        CountConfig(seed=7, rows=4),
        out=tmp_path,
        model="m",
        task="t",
        log=lines.append,
        command=["iclscope", "run", "count"],
    )
    run = load_run(path)
    assert run.manifest["kind"] == "count" and run.manifest["status"] == "complete"
    assert run.manifest["seed"] == 7
    score = "the first token of each answer"  # the default an analysis states
    assert run.manifest["params"] == {"rows": 4, "label": None, "score": score, "learned": 5}
    assert run.manifest["executor"]["executor"] == "local"
    assert list(run.tables["counts"].value) == [0, 1, 2, 3]
    assert json.loads((path / "summary.json").read_text()) == {"rows": 4}
    report = (path / "report.md").read_text()
    assert report.startswith("# Count") and report.endswith(f"Scored by {score}.\n")
    assert (path / "note.txt").read_text() == "hello\n"
    assert (path / "extra.bin").read_bytes() == b"\x00\x01"
    fig = go.Figure(json.loads((path / "figures" / "grid.json").read_text()))
    assert fig.layout.yaxis.tickvals == (0, 1, 2, 3, 4)  # integer axes, a tick per value
    assert "\n## Figures\n\n![" in report and "](figures/grid.svg)" in report  # no section
    assert "counting 4" in lines and lines[-1] == str(path)


def test_runner_refuses_before_a_run_directory_exists(tmp_path):
    CountAnalysis.loads.clear()
    with pytest.raises(IclscopeError, match="too many rows"):
        run_analysis(CountAnalysis(), CountConfig(rows=101), out=tmp_path, model="m", task="t")
    assert list(tmp_path.iterdir()) == [] and CountAnalysis.loads == []


def test_a_failed_run_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(STATIC_ENV, "0")

    class Broken(CountAnalysis):
        def run(self, model, task, config, executor, *, log=print):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_analysis(Broken(), CountConfig(), out=tmp_path, model="m", task="t")
    (run_dir,) = tmp_path.iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "executor" in manifest


def test_runner_writes_static_figures(tmp_path, monkeypatch):
    """The static copies come from the runner, so every kind gets them."""
    monkeypatch.setenv(STATIC_ENV, "1")
    path = run_analysis(CountAnalysis(), CountConfig(), out=tmp_path, model="m", task="t")
    svg = (path / "figures" / "grid.svg").read_text()
    assert svg.startswith("<svg")
    assert 'href="figures/grid.svg"' in (path / "report.html").read_text()


def test_config_params_and_config_from():
    config = config_from(CountConfig, {"rows": 9, "seed": 3, "not_a_field": 1})
    assert config == CountConfig(seed=3, rows=9)
    assert config.params() == {"rows": 9, "label": None}


@pytest.mark.parametrize("item", entries(), ids=lambda e: e.kind)
def test_every_registered_analysis_resolves(item):
    cls = item.load()
    assert issubclass(cls, Analysis) and cls.kind == item.kind
    assert issubclass(cls.config_type, AnalysisConfig)
    cls.config_type()  # every field has a default
    if item.page is not None:
        assert callable(item.page_function())


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(IclscopeError) as err:
        entry("nope")
    assert "circuit" in err.value.fix and "patch" in err.value.fix
