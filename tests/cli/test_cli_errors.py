"""Every bad input gets one clear message before any work starts.

A table walks every command with bad values for every class of option (counts, shots, seeds,
rates, ports, closed sets, model and task names, output and input paths, usage mistakes). Each
case must exit non-zero, print no traceback, name the option or the file, and leave the runs
folder exactly as it was. The table runs in-process (fast); a few cases run again in a fresh
``python -m interp.cli`` as a user would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from interp.cli import main, options

ROOT = Path(__file__).resolve().parents[2]
ORGANISM = ["--model", "organism"]


def tree(path: Path) -> list[tuple[str, int]]:
    """Every file and folder under ``path`` with its size: what "unchanged" compares."""
    if not path.exists():
        return []
    return sorted(
        (str(p.relative_to(path)), p.stat().st_size if p.is_file() else -1) for p in path.rglob("*")
    )


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A scratch working directory (so the default ``runs`` folder lands there) holding the
    paths the table refers to; yields the placeholders and checks nothing changed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "a-file.txt").write_text("not a folder")
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "has-model").mkdir()
    (tmp_path / "has-model" / "config.json").write_text("{}")
    (tmp_path / "bad-init").mkdir()
    (tmp_path / "bad-init" / "config.json").write_text("{truncated")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {
            "file": str(tmp_path / "a-file.txt"),
            "dir": str(tmp_path / "empty-dir"),
            "new": str(tmp_path / "new-dir"),
            "model_dir": str(tmp_path / "has-model"),
            "bad_init": str(tmp_path / "bad-init"),
            "busy_port": str(busy.getsockname()[1]),
        }
        before, repo_runs = tree(tmp_path), tree(ROOT / "runs")
        yield values
        assert tree(tmp_path) == before, "a refused command changed the working folder"
        assert tree(ROOT / "runs") == repo_runs, "a test wrote into the repository's ./runs"


TRAIN = ["organism", "train", "--out", "{new}"]
# (arguments, any of these must appear in the message)
CASES = [
    # usage mistakes: misspelt commands and options, missing values and arguments
    (["run", "pach"], ["pach"]),
    (["nonsense"], ["nonsense"]),
    (["run", "patch", *ORGANISM, "--shot", "4"], ["--shot"]),
    (["demo", "--n"], ["--n"]),
    (["run", "patch", *ORGANISM, "--prompts"], ["--prompts"]),
    (["show"], ["run"]),
    (["models", "--foo"], ["--foo"]),
    (["organism", "train"], ["--out"]),
    # demo
    (["demo", "--n", "0"], ["--n"]),
    (["demo", "--n", "-1"], ["--n"]),
    (["demo", "--n", "x"], ["--n"]),
    (["demo", "--seed", "-1"], ["--seed"]),
    (["demo", "--circuit-prompts", "0"], ["--circuit-prompts"]),
    (["demo", "--model", "orgnism"], ["orgnism"]),
    (["demo", "--model", "./no/such/model"], ["./no/such/model"]),
    (["demo", *ORGANISM, "--out", "{file}"], ["--out", "a-file.txt"]),
    (["demo", *ORGANISM, "--out", "{file}/sub"], ["--out", "a-file.txt"]),
    (["demo", *ORGANISM, "--out", "/proc/iclscope-x"], ["/proc/iclscope-x"]),
    # eval
    (["eval", *ORGANISM, "--shots", "0,-3"], ["--shots"]),
    (["eval", *ORGANISM, "--shots", "a,b"], ["--shots"]),
    (["eval", *ORGANISM, "--shots", ""], ["--shots"]),
    (["eval", *ORGANISM, "--shots", "0,100000"], ["--shots"]),
    (["eval", *ORGANISM, "--n", "0"], ["--n"]),
    (["eval", *ORGANISM, "--seed", "-5"], ["--seed"]),
    (["eval", *ORGANISM, "--task", "nl_antonyms"], ["nl_antonyms"]),
    (["eval", *ORGANISM, "--task", "nl_capital"], ["nl_capital"]),
    (["eval", "--model", "orgnism"], ["orgnism"]),
    # run patch
    (["run", "patch", *ORGANISM, "--shots", "-3"], ["--shots"]),
    (["run", "patch", *ORGANISM, "--shots", "3000"], ["--shots"]),
    (["run", "patch", *ORGANISM, "--shots", "100000"], ["--shots"]),
    (["run", "patch", *ORGANISM, "--prompts", "0"], ["--prompts"]),
    (["run", "patch", *ORGANISM, "--prompts", "-2"], ["--prompts"]),
    (["run", "patch", *ORGANISM, "--max-batch", "0"], ["--max-batch"]),
    (["run", "patch", *ORGANISM, "--metric", "foo"], ["--metric"]),
    (["run", "patch", *ORGANISM, "--component", "neurons"], ["--component"]),
    (["run", "patch", *ORGANISM, "--ablation", "noise"], ["--ablation"]),
    (["run", "patch", *ORGANISM, "--seed", "-1"], ["--seed"]),
    (["run", "patch", *ORGANISM, "--task", "fn_copy_first"], ["fn_copy_first"]),
    (["run", "patch", *ORGANISM, "--task", "sentimnt_semantic"], ["sentimnt_semantic"]),
    (["run", "patch", *ORGANISM, "--task", "nl_sentiment_natural"], ["nl_sentiment_natural"]),
    (["run", "patch", "--model", "orgnism"], ["orgnism"]),
    (["run", "patch", "--model", "{dir}"], ["empty-dir"]),
    (["run", "patch", *ORGANISM, "--out", "{file}"], ["--out"]),
    (["run", "patch", *ORGANISM, "--out", "/proc/iclscope-x"], ["/proc/iclscope-x"]),
    # run circuit
    (["run", "circuit", *ORGANISM, "--shots", "-1"], ["--shots"]),
    (["run", "circuit", *ORGANISM, "--shots", "3000"], ["--shots"]),
    (["run", "circuit", *ORGANISM, "--prompts", "0"], ["--prompts"]),
    (["run", "circuit", *ORGANISM, "--ablation-prompts", "0"], ["--ablation-prompts"]),
    (["run", "circuit", *ORGANISM, "--seed", "-1"], ["--seed"]),
    (["run", "circuit", *ORGANISM, "--task", "ranking"], ["ranking"]),
    (["run", "circuit", "--model", "orgnism"], ["orgnism"]),
    (["run", "circuit", *ORGANISM, "--out", "{file}"], ["--out"]),
    # bench
    (["bench", "patching", *ORGANISM, "--repeats", "0"], ["--repeats"]),
    (["bench", "patching", *ORGANISM, "--shots", "-1"], ["--shots"]),
    (["bench", "patching", *ORGANISM, "--shots", "3000"], ["--shots"]),
    (["bench", "patching", "--model", "orgnism"], ["orgnism"]),
    (["bench", "kernels", "--batch", "0"], ["--batch"]),
    (["bench", "kernels", "--positions", "0"], ["--positions"]),
    (["bench", "kernels", "--repeats", "0"], ["--repeats"]),
    (["bench", "kernels", "--dtype", "float8"], ["--dtype"]),
    (["bench", "kernels", "--device", "tpu"], ["--device"]),
    (["bench", "kernels", "--size", "huge"], ["--size"]),
    # organism train and eval
    (["organism", "train", "--out", "{file}"], ["--out"]),
    (["organism", "train", "--out", "{model_dir}"], ["--out"]),
    ([*TRAIN, "--minutes", "0"], ["--minutes"]),
    ([*TRAIN, "--minutes", "-5"], ["--minutes"]),
    ([*TRAIN, "--minutes", "nan"], ["--minutes"]),
    ([*TRAIN, "--max-steps", "0"], ["--max-steps"]),
    ([*TRAIN, "--d-model", "0"], ["--d-model"]),
    ([*TRAIN, "--d-model", "100"], ["--d-model"]),
    ([*TRAIN, "--n-layers", "0"], ["--n-layers"]),
    ([*TRAIN, "--lr", "0"], ["--lr"]),
    ([*TRAIN, "--lr", "-1e-3"], ["--lr"]),
    ([*TRAIN, "--seed", "-1"], ["--seed"]),
    ([*TRAIN, "--init", "/nonexistent"], ["--init"]),
    ([*TRAIN, "--init", "{bad_init}"], ["config.json"]),
    (["organism", "eval", "--n", "0"], ["--n"]),
    (["organism", "eval", "--model", "orgnism"], ["orgnism"]),
    (["organism", "eval", "--model", "{file}"], ["a-file.txt"]),
    # inspect, tasks, show
    (["inspect", *ORGANISM, "--backend", "pytorch"], ["--backend"]),
    (["inspect", "--model", "orgnism"], ["orgnism"]),
    (["tasks", "--model", "orgnism"], ["orgnism"]),
    (["show", "/nonexistent/run"], ["/nonexistent/run"]),
    (["show", "{file}"], ["a-file.txt"]),
    (["show", "{dir}"], ["manifest.json"]),
    # app
    (["app", "--runs", "/nonexistent"], ["--runs"]),
    (["app", "--runs", "{file}"], ["--runs"]),
    (["app", "--runs", "{dir}", "--port", "0"], ["--port"]),
    (["app", "--runs", "{dir}", "--port", "70000"], ["--port"]),
    (["app", "--runs", "{dir}", "--port", "{busy_port}"], ["--port"]),
]


def _fill(args: list[str], values: dict[str, str]) -> list[str]:
    return [a.format(**values) for a in args]


@pytest.mark.parametrize("args, names", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_refused_with_one_message(places, capsys, args, names):
    code = main(_fill(args, places))
    out = capsys.readouterr()
    text = out.out + out.err
    assert code != 0, text
    assert "Traceback" not in text
    assert any(name.format(**places) in text for name in names), text
    assert len(text.strip().splitlines()) <= 12 or "Usage" in text, text  # one message


USER_CASES = [
    (["run", "patch", *ORGANISM, "--shot", "4"], "--shot"),
    (["run", "pach"], "pach"),
    (["run", "patch", *ORGANISM, "--prompts"], "--prompts"),
    (["run", "patch", *ORGANISM, "--metric", "foo"], "--metric"),
    (["demo", *ORGANISM, "--out", "/proc/iclscope-x"], "/proc/iclscope-x"),
]


@pytest.mark.parametrize("args, name", USER_CASES, ids=[" ".join(a) for a, _ in USER_CASES])
def test_bad_input_in_a_fresh_process(places, args, name):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "interp.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert name in out.stderr and "Traceback" not in out.stderr + out.stdout
    if name.startswith("--") or name == "pach":  # the usage hint, under the command's name
        assert "Try 'iclscope run patch --help'" in out.stderr or "Usage: iclscope" in out.stderr


def test_closed_sets_match_the_library():
    """The option types repeat the library's names (to keep usage errors instant)."""
    from circuits.activation_patching import COMPONENTS
    from interp.bench.kernels import SIZES
    from interp.engine.metrics import MetricName
    from interp.engine.plan import Source
    from interp.models.interface import Backend

    assert get_args(options.Metric) == get_args(MetricName)
    assert get_args(options.Component) == COMPONENTS
    assert set(get_args(options.Ablation)) <= set(get_args(Source))
    assert get_args(options.Backend) == get_args(Backend)
    assert set(get_args(options.KernelSize)) == set(SIZES)


def test_usage_errors_are_fast():
    """A usage error is answered before torch or a model is imported."""
    code = (
        "import sys; from interp.cli import main; main(['run', 'patch', '--shot', '4']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
