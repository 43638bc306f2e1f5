"""Time the explorer's first page in Chromium: from the server answering its health check to the
runs list drawn in the browser (and, for information, to the first figure of the run opened
below it).

The server is started the way ``tests/explorer/test_browser.py`` starts it
(``python -m interp.cli app``, then ``/_stcore/health`` polled) and Chromium is driven by
Playwright, launched before the server so that its own start is not counted. Each repetition
starts a fresh server, so each one pays the first page's imports. Not part of the test suite;
run it niced on a shared machine, e.g.::

    nice -n 19 .venv/bin/python scripts/explorer_first_page.py --repeat 3

Without ``--runs`` it writes a small runs folder of its own (complete runs with a table, a
figure and a report, and one broken run) in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BROKEN = "patch-broken"


def write_runs(root: Path, count: int) -> None:
    """``count`` complete patch-like runs and one broken run (no model needed)."""
    import numpy as np
    import pandas as pd
    import plotly.express as px

    from interp.runs.store import RunWriter

    rng = np.random.default_rng(0)
    for i in range(count):
        with RunWriter(root, kind="patch", model="tiny-llama", task="demo", seed=i) as run:
            effects = pd.DataFrame(
                [
                    {"layer": layer, "head": head, "effect": float(rng.normal())}
                    for layer in range(4)
                    for head in range(8)
                ]
            )
            run.table("effects", effects)
            grid = effects.pivot(index="layer", columns="head", values="effect")
            run.figure("layer_by_head", px.imshow(grid, title="effect per head"))
            run.summary({"clean_baseline": 0.5 + i / 100, "corrupted_baseline": 0.1})
            run.report("# Patching sweep\n\nA run written to time the explorer.\n")
    (root / BROKEN).mkdir()
    (root / BROKEN / "manifest.json").write_text('{"status": "comp')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux ``/proc``): how much work the server
    did, whatever else the machine was doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(root: Path, log: Path) -> tuple[float, ...]:
    """One fresh server, with Chromium already open (as a user's browser is): seconds to the
    health check, then from it to the page's first paint, to the runs list, and to the first
    figure of the run opened below the list; and the server's CPU seconds from the health check
    to the runs list."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        port = free_port()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "interp.cli", "app", "--runs", str(root), "--port", str(port)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SystemExit(f"the explorer did not answer its health check; see {log}")
            up = time.perf_counter()
            cpu = cpu_seconds(proc.pid)
            page.goto(url, wait_until="domcontentloaded")
            shell = time.perf_counter()
            page.locator("table", has_text=BROKEN).first.wait_for(timeout=300_000)
            listed = time.perf_counter()
            cpu = cpu_seconds(proc.pid) - cpu
            page.wait_for_selector(".js-plotly-plot", timeout=300_000)
            figure = time.perf_counter()
        finally:
            browser.close()
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    return up - start, shell - up, listed - up, figure - up, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh servers to time")
    parser.add_argument(
        "--runs", type=Path, help="runs folder (must hold a run named patch-broken)"
    )
    parser.add_argument("--count", type=int, default=12, help="runs to write without --runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="explorer-first-page-") as tmp:
        root = args.runs
        if root is None:
            root = Path(tmp) / "runs"
            root.mkdir()
            os.environ.setdefault("ICLSCOPE_STATIC_FIGURES", "0")
            write_runs(root, args.count)
        lists, cpus = [], []
        for i in range(args.repeat):
            up, shell, listed, figure, cpu = one_start(root, Path(tmp) / f"server-{i}.log")
            lists.append(listed)
            cpus.append(cpu)
            print(
                f"start {i + 1}: server up {up:.1f} s; after it, page shell {shell:.1f} s, "
                f"runs list {listed:.1f} s (server CPU {cpu:.1f} s), first figure {figure:.1f} s",
                flush=True,
            )
        print(
            f"runs list after server up: median {statistics.median(lists):.1f} s "
            f"(server CPU {statistics.median(cpus):.1f} s); load average {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
