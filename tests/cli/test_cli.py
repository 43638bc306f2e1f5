"""The command line: clear errors without tracebacks, JSON outputs, complete run directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interp.cli import main
from interp.runs.store import load_run

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
REPO_RUNS = Path(__file__).resolve().parents[2] / "runs"


@pytest.fixture(autouse=True)
def away_from_the_users_runs(tmp_path, monkeypatch):
    """Every command here runs in a scratch folder, so a default ``--out runs`` lands there;
    and the repository's own ``./runs`` must come out as it went in."""
    before = sorted(REPO_RUNS.rglob("*")) if REPO_RUNS.exists() else []
    monkeypatch.chdir(tmp_path)
    yield
    assert (sorted(REPO_RUNS.rglob("*")) if REPO_RUNS.exists() else []) == before


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run the installed entry point as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "interp.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )


def test_help_lists_every_command():
    out = cli("--help")
    assert out.returncode == 0
    for command in ("tasks", "demo", "organism", "inspect", "show", "app"):
        assert command in out.stdout
    sub = cli("organism", "--help")
    assert "train" in sub.stdout and "eval" in sub.stdout


def test_tasks_json(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"classification", "function", "ranking", "retrieval"}
    names = {r["name"] for r in rows}
    assert {"sentiment_semantic", "sentiment_arbitrary", "ranking", "kv_retrieval"} <= names
    assert sum(r["kind"] == "function" for r in rows) >= 8


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--model", "./no/such/model"], "unknown model path"),
        (["organism", "eval", "--model", "/nonexistent/folder"], "unknown model path"),
        (["inspect", "--model", "org/hub-model"], "HF_HUB_OFFLINE"),
        (
            ["organism", "train", "--out", "/tmp/iclscope-x", "--init", "/nonexistent"],
            "not a trained model folder",
        ),
    ],
)
def test_user_errors_print_cleanly(tmp_path, args, message):
    out = cli(*args)
    assert out.returncode == 2
    assert message in out.stderr and "fix:" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_corrupt_run_directory(tmp_path):
    run = tmp_path / "demo-broken"
    run.mkdir()
    (run / "manifest.json").write_text("{not json")
    out = cli("show", str(run))
    assert out.returncode == 2 and "manifest.json" in out.stderr
    assert "Traceback" not in out.stderr
    assert (run / "manifest.json").read_text() == "{not json"  # nothing lost


def test_eval_json_on_a_tiny_model(tiny_dirs, capsys):
    assert main(["organism", "eval", "--model", tiny_dirs["llama"], "--json", "--n", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("classification_semantic", "classification_arbitrary", "function_tasks"):
        assert set(result[key]) == {"0", "1", "2", "4", "8"}
        assert all(0.0 <= v <= 1.0 for v in result[key].values())
    assert 0.0 <= result["ranking_p_at_1"] <= 1.0 and 0.0 <= result["kv_retrieval_acc"] <= 1.0


def test_demo_writes_a_complete_run(tiny_dirs, tmp_path, capsys):
    args = [
        "demo",
        "--model",
        tiny_dirs["gpt2"],
        "--out",
        str(tmp_path),
        "--n",
        "8",
        "--circuit-prompts",
        "16",
        "--ablation-prompts",
        "8",
    ]
    assert main(args) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    kinds = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert kinds == ["demo"]  # one run directory holds the whole job
    run = load_run(path)
    assert run.status == "complete"
    assert run.manifest["seed"] == 0 and run.manifest["versions"]["torch"]
    assert run.manifest["params"]["ablation_prompts"] == 8
    assert run.manifest["params"]["suite"] == "organism"  # a tiny model has no English vocabulary
    assert {"eval_by_shots", "logit_lens", "query_attention", "step1", "ablation"} <= set(
        run.tables
    )
    assert {"icl_curve", "logit_lens", "query_attention"} <= set(run.figures)
    assert "sentiment_arbitrary_8shot" in run.summary and "circuit_random_drop" in run.summary
    html = (run.path / "report.html").read_text()
    assert "plotly" in html and "Held-out evaluation" in html and "Step 3" in html
    # same seed, same numbers
    again_args = [
        "demo",
        "--model",
        tiny_dirs["gpt2"],
        "--out",
        str(tmp_path),
        "--n",
        "8",
        "--no-pipeline",
    ]
    assert main(again_args) == 0
    again = load_run(capsys.readouterr().out.strip().splitlines()[-1])
    assert again.summary and again.summary.items() <= run.summary.items()  # no circuit keys
