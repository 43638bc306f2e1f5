"""How runs end, for interp.runs.store: interrupted, stale, and many at once (the same second,
two processes, a stop while claiming the directory, an output path blocked by a file)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from run_store_helpers import _write_run

from interp.errors import IclscopeError, Interrupted
from interp.runs import store as runs
from interp.runs.store import RunWriter, list_runs, load_run


# -- how runs end: interrupted, stale, and many at once ----------------------------------------
@pytest.mark.parametrize(
    "stop, name", [(KeyboardInterrupt(), "SIGINT"), (Interrupted(signal.SIGTERM), "SIGTERM")]
)
def test_a_stop_marks_the_run_interrupted(tmp_path: Path, stop, name) -> None:
    with pytest.raises(type(stop)), RunWriter(tmp_path, kind="patch") as run:
        run.summary({"step": 1})
        raise stop
    loaded = load_run(run.path)
    assert loaded.status == "interrupted" and name in loaded.manifest["error"]
    assert loaded.summary == {"step": 1}


def test_manifest_records_the_writing_process(tmp_path: Path) -> None:
    with RunWriter(tmp_path, kind="demo") as run:
        process = load_run(run.path).manifest["process"]
    assert process["pid"] == os.getpid() and process["host"] == socket.gethostname()
    assert isinstance(process["start"], int)  # Linux: the process's start time


def _with_process(run_dir: Path, **process) -> None:
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["status"] = "running"
    manifest["process"] |= process
    path.write_text(json.dumps(manifest))


def test_a_running_run_whose_process_is_gone_is_stale(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = _write_run(tmp_path, "killed")
    _with_process(path, pid=gone.pid)
    assert load_run(path).status == "stale"
    assert list_runs(tmp_path)[0]["status"] == "stale"
    assert load_run(path).manifest["status"] == "running"  # reading never rewrites the run


def test_stale_covers_reused_pids_and_unreaped_processes(tmp_path: Path) -> None:
    path = _write_run(tmp_path, "r")
    _with_process(path, start=-1)  # this pid is alive, but it is not the process that wrote
    assert load_run(path).status == "stale"
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(100):  # exited, not yet waited for
        if Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    _with_process(path, pid=zombie.pid, start=None)
    assert load_run(path).status == "stale"
    zombie.wait()


@pytest.mark.parametrize("process", [{"host": "elsewhere"}, {"pid": None}, {}])
def test_running_stays_running_when_nothing_says_otherwise(tmp_path: Path, process) -> None:
    """A run of another host, or one without a process record, cannot be judged from here."""
    path = _write_run(tmp_path, "r")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["process"] = (manifest["process"] | process) if process else None
    manifest["status"] = "running"
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert load_run(path).status == "running"


def test_runs_started_in_the_same_second_get_distinct_ids(tmp_path: Path, monkeypatch) -> None:
    """Force the collision: the same clock second and the same random suffix twice."""
    suffixes = iter(["abcd", "abcd", "abcd", "ef01"])
    monkeypatch.setattr(runs.secrets, "token_hex", lambda n: next(suffixes))

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2030, 1, 1, tzinfo=tz)

    monkeypatch.setattr(runs, "datetime", Frozen)
    first, second = RunWriter(tmp_path, kind="patch"), RunWriter(tmp_path, kind="patch")
    assert first.run_id == second.run_id == "patch-20300101-000000-abcd"
    with first, second:
        pass
    assert {first.path.name, second.path.name} == {
        "patch-20300101-000000-abcd",
        "patch-20300101-000000-ef01",
    }
    assert [load_run(p).status for p in (first.path, second.path)] == ["complete"] * 2
    assert load_run(second.path).manifest["run_id"] == second.path.name


CONCURRENT_WRITER = """
import secrets, sys, time
import pandas as pd
from interp.runs.store import RunWriter
first, real = iter(["abcd"]), secrets.token_hex
secrets.token_hex = lambda n: next(first, None) or real(n)  # both draw the same suffix first
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together
with RunWriter(sys.argv[1], kind="patch") as run:
    run.table("results", pd.DataFrame({"a": [1, 2]}))
    run.summary({"ok": 1})
print(run.path.name)
"""


def test_two_processes_write_into_one_runs_folder_at_once(tmp_path: Path) -> None:
    start = str(float(int(time.time()) + 3) + 0.05)  # just after a whole second, for both
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, str(tmp_path), start],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    names = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert len(set(names)) == 2
    assert sorted(names) == sorted(p.name for p in tmp_path.iterdir())
    assert all(load_run(tmp_path / n).status == "complete" for n in names)


def test_a_stop_while_claiming_the_directory_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def stop(path, obj):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "_write_json", stop)
    with pytest.raises(KeyboardInterrupt), RunWriter(tmp_path, kind="demo"):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", ["file", "parent-file"])
def test_an_output_path_blocked_by_a_file_is_named(tmp_path: Path, make: str) -> None:
    blocker = tmp_path / "README.md"
    blocker.write_text("keep me")
    root = blocker if make == "file" else blocker / "runs"
    with pytest.raises(IclscopeError, match="README.md"):
        RunWriter(root, kind="demo").__enter__()
    assert blocker.read_text() == "keep me"
