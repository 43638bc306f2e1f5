"""Every stop is clean: Ctrl-C, SIGTERM and SIGKILL sent to real runs at random points, and
SIGTERM sent to the explorer.

The runs are real subprocesses (``python -m interp.cli run patch --model organism``), started
together so that the trials share the machine's cores instead of queueing for them. The
random points are drawn from a seed printed with any failure, so a failing trial can be
replayed with ``ICLSCOPE_SIGNAL_SEED``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from interp.cli import main
from interp.runs.store import list_runs, load_run

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
RUN = [
    sys.executable,
    "-m",
    "interp.cli",
    "run",
    "patch",
    "--model",
    "organism",
    "--prompts",
    "2",
    "--out",
]
# (signal, when): "early" is a random instant after the command started (during its imports
# and checks, or its model load); "running" a random instant after the run directory appeared
TRIALS = [
    (signal.SIGINT, "early"),
    (signal.SIGTERM, "early"),
    (signal.SIGINT, "running"),
    (signal.SIGTERM, "running"),
    (signal.SIGINT, "running"),
    (signal.SIGKILL, "running"),
]
SEED = int(os.environ.get("ICLSCOPE_SIGNAL_SEED", random.randrange(1_000_000)))


@dataclass
class Outcome:
    signum: int
    when: str
    delay: float
    code: int
    stderr: str
    runs: list[Path]


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has installed its stop handlers (Python itself catches SIGINT from
    its first instant, SIGTERM only once ``main`` runs): the "early" trials start there, as
    no program can act on a signal before its own code runs."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(
        int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")
    )
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def _manifest(out: Path) -> Path | None:
    found = list(out.glob("*/manifest.json"))
    return found[0] if found else None


def _trial(out: Path, signum: int, when: str, delay: float) -> Outcome:
    proc = subprocess.Popen(
        [*RUN, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )
    ready = (
        (lambda: _manifest(out) is not None)
        if when == "running"
        else (lambda: _catches_sigterm(proc.pid))
    )
    try:
        deadline = time.monotonic() + 240
        while not ready() and proc.poll() is None:
            assert time.monotonic() < deadline, f"never ready to be stopped {when}"
            time.sleep(0.02)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Outcome(signum, when, delay, proc.returncode, stderr, sorted(out.iterdir()))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[Outcome]:
    rng = random.Random(SEED)
    plans = [
        (
            tmp_path_factory.mktemp(f"sig{i}"),
            s,
            w,
            rng.uniform(0.0, 3.0) if w == "early" else rng.uniform(0.0, 1.5),
        )
        for i, (s, w) in enumerate(TRIALS)
    ]
    with ThreadPoolExecutor(len(plans)) as pool:
        return list(pool.map(lambda p: _trial(*p), plans))


def _describe(o: Outcome) -> str:
    return (
        f"seed {SEED}: {signal.Signals(o.signum).name} {o.when} +{o.delay:.2f}s -> exit "
        f"{o.code}\n{o.stderr[-2000:]}"
    )


def test_ctrl_c_and_sigterm_exit_128_plus_signal_and_mark_the_run(outcomes):
    for o in (o for o in outcomes if o.signum != signal.SIGKILL):
        why = _describe(o)
        if o.code == 0:  # the run finished before the signal came: nothing to interrupt
            assert [load_run(r).status for r in o.runs] == ["complete"], why
            continue
        assert o.code == 128 + o.signum, why
        assert f"interrupted ({signal.Signals(o.signum).name})" in o.stderr, why
        assert "Traceback" not in o.stderr, why
        assert len(o.runs) <= 1, why
        for run in o.runs:  # what was written before the stop is whole, and says so
            loaded = load_run(run)
            assert loaded.status == "interrupted", why
            assert signal.Signals(o.signum).name in loaded.manifest["error"], why
        if o.when == "running":
            assert o.runs, why


def test_a_killed_run_reads_as_stale(outcomes, capsys):
    (killed,) = [o for o in outcomes if o.signum == signal.SIGKILL]
    assert killed.code == -signal.SIGKILL, _describe(killed)
    (run,) = killed.runs
    loaded = load_run(run)
    assert loaded.manifest["status"] == "running"  # it never had the chance to say otherwise
    assert loaded.status == "stale"
    assert [e["status"] for e in list_runs(run.parent)] == ["stale"]
    assert main(["show", str(run)]) == 0
    assert "status stale" in capsys.readouterr().out


def test_in_process_interrupt_returns_130(tmp_path, capsys, monkeypatch):
    """Ctrl-C inside a command called in-process: 130 and one line, never a silent 0; the
    caller's own handlers come back afterwards."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(
        "interp.runs.store.load_run", lambda path: os.kill(os.getpid(), signal.SIGINT)
    )
    (tmp_path / "manifest.json").write_text("{}")  # a run directory, not a folder of runs
    assert main(["show", str(tmp_path)]) == 130
    assert "interrupted (SIGINT)" in capsys.readouterr().err
    assert {s: signal.getsignal(s) for s in before} == before


# -- the explorer -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200
    except OSError:
        return False


def _descendants(pid: int) -> set[int]:
    """Every process whose parent chain leads to ``pid`` (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_the_explorer_stops_with_sigterm(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "interp.cli",
            "app",
            "--runs",
            str(tmp_path),
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            assert proc.poll() is None, "the explorer exited before serving"
            assert time.monotonic() < deadline, "the explorer never answered its health check"
            time.sleep(0.3)
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)  # to `iclscope app` itself, not its process group
        proc.wait(timeout=30)
        assert not _healthy(url), "the server outlived `iclscope app`"
        assert not {p for p in children if Path(f"/proc/{p}").exists()}, "a child outlived it"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
