"""The README's commands and its Python example run as shown.

Every ``iclscope ...`` line in the README's fenced shell blocks runs in a fresh folder with
``HF_HUB_OFFLINE=1`` and must exit 0. A run command must write the run directory it names on
its last line of output (under its ``--out`` folder, complete, with a report); a ``--dry-run``
must write nothing at all. ``make`` lines are skipped: they are this suite and the demo.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
TEXT = README.read_text()


def _shell_commands(text: str) -> list[str]:
    """The ``iclscope`` lines of the fenced bash/sh/console blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("iclscope "):
                commands.append(line)
    return commands


COMMANDS = _shell_commands(TEXT)


def _iclscope() -> list[str]:
    """The installed ``iclscope`` script beside this interpreter, else the module."""
    script = Path(sys.executable).parent / "iclscope"
    if script.exists():
        return [str(script)]
    found = shutil.which("iclscope")
    return [found] if found else [sys.executable, "-m", "interp.cli"]


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def test_readme_shows_commands():
    assert COMMANDS, "the README shows no iclscope command"
    assert any(" run " in f" {c} " for c in COMMANDS), "the README shows no run command"


@pytest.mark.parametrize(
    "command", COMMANDS, ids=[" ".join(shlex.split(c, comments=True)[1:]) for c in COMMANDS]
)
def test_readme_command_runs(command, tmp_path):
    args = shlex.split(command, comments=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", ICLSCOPE_STATIC_FIGURES="0", COLUMNS="120")
    done = subprocess.run(
        _iclscope() + args[1:],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{command}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr

    if "--dry-run" in args:
        written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
        assert written == [], f"--dry-run wrote {written}"
        return
    if args[1:2] == ["run"] or args[1:2] == ["demo"]:
        out = tmp_path / (_option(args, "--out") or "runs")
        lines = done.stdout.strip().splitlines()
        assert lines, f"{command} printed no run directory"
        run_dir = tmp_path / lines[-1].strip()
        assert run_dir.is_dir(), f"{command} named {lines[-1]!r}, which does not exist"
        assert run_dir.parent.resolve() == out.resolve(), f"{run_dir} is not under {out}"
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["status"] == "complete", manifest
        assert (run_dir / "summary.json").is_file()
        assert (run_dir / "report.html").stat().st_size > 0


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    table = namespace["table"]
    cfg = namespace["model"].cfg
    # one row per prompt, layer and head, each with a finite metric
    assert len(table) == 4 * cfg.n_layers * cfg.n_heads
    assert {"layer", "head", "metric"} <= set(table.columns)
    assert table.metric.notna().all()
