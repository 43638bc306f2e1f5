"""``iclscope run patch`` writes a complete run directory for every component and ablation."""

from __future__ import annotations

import json

import pytest

from interp.cli import main
from interp.runs.store import load_run


@pytest.mark.parametrize(
    "component, ablation, figure",
    [
        ("heads", None, "layer_by_head"),
        ("resid", None, "layer_by_position"),
        ("mlp", "mean", "layer_by_position"),
        ("edges", None, "layer_by_edge"),
        ("heads", "resample", "layer_by_head"),
        ("heads", "zero", "layer_by_head"),
    ],
)
def test_run_patch_writes_a_run(tiny_dirs, tmp_path, capsys, component, ablation, figure):
    args = [
        "run",
        "patch",
        "--model",
        tiny_dirs["llama"],
        "--component",
        component,
        "--prompts",
        "2",
        "--out",
        str(tmp_path),
    ]
    if ablation:
        args += ["--ablation", ablation, "--metric", "kl"]
    assert main(args) == 0
    run = load_run(capsys.readouterr().out.strip().splitlines()[-1])
    assert run.status == "complete"
    assert {"results", "baselines", "by_component", "top_components"} <= set(run.tables)
    assert figure in run.figures
    plan = json.loads((run.path / "plan.json").read_text())
    results, baselines = run.tables["results"], run.tables["baselines"]
    # every prompt's clean and corrupted run are two rows of the same plan
    assert len(plan["rows"]) == len(results) + 2 * len(baselines) == run.summary["rows"]
    assert sorted(r["labels"].get("baseline", "") for r in plan["rows"][-2:]) == [
        "clean",
        "corrupted",
    ]
    assert results.metric.notna().all()
    if ablation:  # KL to the clean run: ablating something must move some row off zero
        assert results.metric.max() > 1e-6
        assert plan["rows"][0]["edits"][0]["source"] == ablation
    # noising (ablations, knockouts) is read against the clean run, denoising the corrupted one
    noising = bool(ablation) or component == "edges"
    base = results.clean_baseline if noising else results.corrupted_baseline
    assert (results.effect - (results.metric - base)).abs().max() < 1e-6
    top = run.tables["top_components"]
    assert run.summary["top_component"]["effect"] == pytest.approx(top.effect.iloc[0])
    assert [c["effect"] for c in run.summary["top_components"]] == pytest.approx(list(top.effect))
    assert run.summary["clean_baseline"] == pytest.approx(baselines.clean.mean())
    if component in ("heads", "resid") and not ablation:  # attribution beside exact patching
        assert -1.0 <= run.summary["attribution_rank_corr"] <= 1.0
        assert len(run.tables["attribution"]) == len(run.tables["by_component"])


def test_heads_per_position(tiny_dirs, tmp_path, capsys):
    args = [
        "run",
        "patch",
        "--model",
        tiny_dirs["llama"],
        "--per-position",
        "--prompts",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    run = load_run(capsys.readouterr().out.strip().splitlines()[-1])
    table = run.tables["results"]
    assert {"layer", "head", "position"} <= set(table.columns)
    assert "layer_by_head" in run.figures and "layer_by_position" in run.figures


def test_run_patch_refuses_bad_input(tiny_dirs, tmp_path, capsys):
    base = ["run", "patch", "--model", tiny_dirs["llama"], "--out", str(tmp_path)]
    assert main(base + ["--component", "neurons"]) == 2
    assert "'--component': Value error, 'neurons' is not one of" in capsys.readouterr().err
    assert main(base + ["--task", "ranking"]) == 2
    assert "classification" in capsys.readouterr().err
    assert main(base + ["--ablation", "noise"]) == 2
