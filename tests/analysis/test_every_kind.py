"""Every registered kind of analysis, run at its smallest through the one runner, writes a
complete run directory with static figures linked from its report."""

from __future__ import annotations

import json

import pytest

from interp.analysis import entries, get, run_analysis
from interp.runs import load_run
from interp.runs.reports import STATIC_ENV


def _circuit(**values):
    from circuits.icl_circuit.analysis import CircuitConfig

    return CircuitConfig(**values)


SMALLEST = {
    "patch": ("sentiment_semantic", {"prompts": 2}),
    "circuit": ("sentiment_arbitrary", {"prompts": 16, "ablation_prompts": 2}),
    "task-vectors": (
        "fn_copy_first",
        {
            "shots": 2,
            "test_items": 4,
            "te_prompts": 4,
            "trials": 2,
            "steps": 2,
            "batch": 2,
            "circuit_prompts": 8,
        },
    ),
    "eviction": (
        "sentiment_arbitrary",
        {"shots": 4, "prompts": 2, "train": False, "lengths": (512,), "rates": (0.5,)},
    ),
    "block-relevance": ("ranking", {"prompts": 4, "docs": 4, "chunk": 2}),
    "demo": ("demo", {"n": 2, "shots": (0, 1), "circuit": False}),
    "atlas": (
        "atlas",
        {"parts": ("circuit",), "circuit": _circuit(prompts=16, ablation_prompts=2)},
    ),
}


def test_every_kind_has_a_smallest_run():
    assert set(SMALLEST) == {e.kind for e in entries()}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(SMALLEST))
def test_every_kind_writes_static_figures(kind, tmp_path, monkeypatch):
    monkeypatch.setenv(STATIC_ENV, "1")
    analysis = get(kind)
    task, values = SMALLEST[kind]
    config = analysis.config_type(**values)
    path = run_analysis(analysis, config, out=tmp_path, model="organism", task=task)
    run = load_run(path)
    assert run.manifest["kind"] == kind and run.manifest["status"] == "complete"
    assert json.loads((path / "summary.json").read_text())
    figures = sorted((path / "figures").glob("*.json"))
    assert figures, f"{kind} drew no figure"
    html = (path / "report.html").read_text()
    for figure in figures:
        svg = figure.with_suffix(".svg")
        assert svg.read_text().startswith("<svg"), f"{kind}: no static copy of {figure.name}"
        assert f'href="figures/{svg.name}"' in html
