"""The explorer in a real browser: Debian's Chromium driven by Playwright.

Skips loudly when Chromium is missing and cannot be installed (not root); ``make test``
installs it as root, so CI always runs this.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from interp.cli import main

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

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="LOUD SKIP: chromium is missing (`make test` installs it as root and stops without it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def explorer_server(root, log) -> Iterator[str]:
    """``iclscope app`` on the runs in ``root``, on a free port, its output in ``log``; yields
    its address once it answers its health check, and stops it (its whole process group) on
    leaving."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interp.cli", "app", "--runs", str(root), "--port", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("the explorer did not answer its health check")
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # stop it by its PID (and its process group)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ICLSCOPE_STATIC_FIGURES", "0")  # checked in test_app.py
        assert (
            main(
                [
                    "run",
                    "patch",
                    "--model",
                    tiny_dirs["llama"],
                    "--prompts",
                    "2",
                    "--out",
                    str(root),
                ]
            )
            == 0
        )
        for arch in ("llama", "gpt2"):  # one analysis on two models: what Compare is for
            assert (
                main(
                    [
                        "run",
                        "circuit",
                        "--model",
                        tiny_dirs[arch],
                        "--prompts",
                        "16",
                        "--out",
                        str(root),
                    ]
                )
                == 0
            )
    (root / "patch-broken").mkdir()
    (root / "patch-broken" / "manifest.json").write_text('{"status": "comp')
    log = tmp_path_factory.mktemp("explorer-log") / "server.log"
    with explorer_server(root, log) as url:
        yield url, root, log


PLOTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(e => ({
    title: (e.layout.title || {}).text || '', traces: (e.data || []).map(t => ({
        type: t.type, name: t.name || '', dash: (t.line || {}).dash || '', zmin: t.zmin,
        zmax: t.zmax})),
    xticks: [...e.querySelectorAll('.xtick text')].map(t => t.textContent)}))"""
"""Every plotly figure on the page: its title, its traces, and the tick labels it drew."""


def plots(page, title_part: str) -> list[dict]:
    return [p for p in page.evaluate(PLOTS) if title_part in p["title"]]


def wait_for_ticks(page, title_part: str, count: int, seconds: int = 60) -> dict | None:
    """The first plot whose title has ``title_part``, once it has drawn ``count`` x ticks (or,
    after ``seconds``, as it stands, so the caller's assertion reports what was drawn)."""
    plot = None
    for _ in range(seconds):
        plot = (plots(page, title_part) or [None])[0]
        if plot and len(plot["xticks"]) >= count:
            break
        time.sleep(1)
    return plot


def test_explorer_in_chromium(served, tmp_path):
    from playwright.sync_api import sync_playwright

    url, root, log = served
    circuits = sorted(p.name for p in root.iterdir() if p.name.startswith("circuit-"))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    console_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

        # runs list: short ids, the broken run with its reason (the run that opens by default is
        # checked in test_app.py; here the address names one)
        page.goto(f"{url}/?run={circuits[0]}")
        runs_list = page.locator("table", has_text="patch-broken").first
        runs_list.wait_for(timeout=120_000)
        text = runs_list.inner_text()
        assert runs_list.locator("tbody tr").count() == 4, text
        assert "broken" in text and "manifest.json" in text
        assert "min ago" in text or "just now" in text
        assert circuits[0] not in text and circuits[0].split("-")[0] + "-" in text  # short ids
        short = "-".join([circuits[0].split("-")[0], circuits[0].split("-")[-1]])
        page.get_by_role("heading", name=short).wait_for(timeout=60_000)

        # run page: sections, figures with data, a tick on every head
        page.get_by_text("Step 1: summarize").first.wait_for(timeout=60_000)
        page.get_by_text("Ablations").first.wait_for(timeout=60_000)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.wait_for_function(
            "() => document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=60_000
        )
        assert all(p["traces"] for p in page.evaluate(PLOTS))
        # under load Plotly can be read between two draws, so wait for a full draw first
        heads = wait_for_ticks(page, "label assignment accuracy per head", 8)
        assert heads and heads["xticks"] == [str(h) for h in range(8)], heads
        summary = page.locator("table", has_text="step1_best_layer").first.inner_text()
        assert not re.search(r"\d\.\d{4,}", summary), summary  # 2-3 significant figures
        page.screenshot(path=str(shots / "run.png"), full_page=True)

        # prompt view: roles with their legend, attention shaded on the tokens, the head grid
        page.get_by_text("Prompt view", exact=True).click()
        page.get_by_role("heading", name="Prompt view").wait_for(timeout=60_000)
        # organism, from the registry; the first visit also imports torch and transformers,
        # which the runs list never needs
        page.wait_for_selector("span.tok", timeout=240_000)
        assert page.locator("span.tok[title='s_q']").count() == 1
        assert page.locator(".legend .role-chip").count() >= 5
        grid = wait_for_ticks(page, "Every head", 8)
        assert grid and grid["xticks"] == [str(h) for h in range(8)]  # organism: 8 heads
        frame = page.frame_locator("iframe").first
        boxes = frame.locator(".colored-tokens > span > span")
        boxes.first.wait_for(timeout=60_000)
        assert boxes.count() == page.locator("span.tok").count()  # one box per token
        shades = boxes.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
        white = "rgb(255, 255, 255)"
        assert len(set(shades)) > 2 and shades.count(white) < len(shades), shades
        brightness = [sum(map(int, re.findall(r"\d+", shade)[:3])) for shade in shades]
        number = re.compile(r"(^|\s)[01]\.\d+(\s|$)")
        assert not number.search(frame.locator("body").inner_text())
        boxes.nth(brightness.index(min(brightness))).hover()  # the most attended token ...
        for _ in range(20):
            if number.search(frame.locator("body").inner_text()):
                break  # ... shows its weight
            time.sleep(0.5)
        else:
            pytest.fail("hovering a token did not show its attention weight")
        assert plots(page, "attention from s_q") and plots(page, "L")  # the bar chart beside
        page.screenshot(path=str(shots / "prompt.png"), full_page=True)

        # compare: the two circuits (two models) overlaid, heatmaps on one scale, deltas
        page.get_by_text("Compare", exact=True).click()
        page.get_by_role("heading", name="Curves, overlaid").wait_for(timeout=60_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].some(e => "
            "(e.layout.title.text || '').includes('solid'))",
            timeout=60_000,
        )
        curve = plots(page, "Step 1")[0]
        names = [t["name"] for t in curve["traces"]]
        assert any(n.startswith("A ") for n in names) and any(n.startswith("B ") for n in names)
        assert {t["dash"] for t in curve["traces"]} == {"solid", "dash"}
        maps = plots(page, "one colour scale")
        assert maps and all(
            len({(t["zmin"], t["zmax"]) for t in m["traces"][:2]}) == 1 for m in maps
        )
        assert any(t["name"] == "B − A" for m in maps for t in m["traces"])
        deltas = page.locator("table", has_text="B − A").first.inner_text()
        assert "step1_best_centroid_acc" in deltas
        page.screenshot(path=str(shots / "compare.png"), full_page=True)

        errors = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
        assert errors.count() == 0
        browser.close()
    assert not [e for e in console_errors if "favicon" not in e], console_errors
    assert all((shots / f"{n}.png").stat().st_size > 10_000 for n in ("run", "prompt", "compare"))
    server = log.read_text()
    assert "deprecat" not in server.lower() and "Traceback" not in server, server[-3000:]
