"""The explorer in a real browser: Debian's Chromium driven by Playwright.

Skips loudly when Chromium is missing and cannot be installed (not root); ``make test``
installs it as root, so CI always runs this.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from interp.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="LOUD SKIP: chromium is missing (`make test` installs it as root and stops without it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-runs")
    assert main(["run", "patch", "--model", tiny_dirs["llama"], "--prompts", "2",
                 "--out", str(root)]) == 0  # fmt: skip
    assert main(["run", "circuit", "--model", tiny_dirs["llama"], "--prompts", "16",
                 "--out", str(root)]) == 0  # fmt: skip
    (root / "patch-broken").mkdir()
    (root / "patch-broken" / "manifest.json").write_text('{"status": "comp')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interp.cli", "app", "--runs", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
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
    yield url, root
    os.killpg(proc.pid, signal.SIGTERM)  # stop it by its PID (and its process group)
    proc.wait(timeout=30)


def test_explorer_in_chromium(served, tiny_dirs, tmp_path):
    from playwright.sync_api import sync_playwright

    url, root = served
    circuit_run = next(p.name for p in root.iterdir() if p.name.startswith("circuit-"))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    console_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{url}/?run={circuit_run}")  # a run named in the URL opens directly
        page.get_by_text("patch-broken").first.wait_for(timeout=60_000)
        runs_list = page.locator("table", has_text="patch-broken").first
        text = runs_list.inner_text()
        assert runs_list.locator("tbody tr").count() == 3, text
        assert "patch-broken" in text and "broken" in text
        # the circuit run's sections render plotly figures with data
        page.get_by_text("Step 1: summarize").first.wait_for(timeout=60_000)
        page.get_by_text("Ablations").first.wait_for(timeout=60_000)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        n_traces = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].map(e => (e.data||[]).length)"
        )
        assert n_traces and all(n > 0 for n in n_traces)
        page.screenshot(path=str(shots / "run.png"), full_page=True)
        # prompt view: coloured tokens and an attention plot for a chosen head
        page.get_by_text("Prompt view").click()
        page.get_by_role("heading", name="Prompt view").wait_for(timeout=60_000)
        box = page.get_by_label("model", exact=True)
        box.fill(tiny_dirs["llama"])
        box.press("Enter")
        page.wait_for_selector("span.tok", timeout=60_000)
        assert page.locator("span.tok[title='s_q']").count() == 1
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        assert "attention from s_q" in page.locator(".js-plotly-plot").first.inner_text()
        page.screenshot(path=str(shots / "prompt.png"), full_page=True)
        errors = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
        assert errors.count() == 0
        browser.close()
    assert not [e for e in console_errors if "favicon" not in e], console_errors
