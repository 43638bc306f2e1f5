"""Every kind's run page in Chromium at 1280 px: a screenshot each, into a folder the test
names (``ICLSCOPE_SCREENSHOTS`` to choose it), and no figure narrower than half the page. The
atlas's page, on a hand-written atlas run, with its links to the runs behind a head."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_atlas_page import ATLAS, ATLAS_ENTRY, CIRCUIT, write_atlas_runs
from test_browser import CHROMIUM, FLAGS, explorer_server

from interp.analysis import get, run_analysis
from interp.runs.reports import STATIC_ENV

WIDTH = 1280
KINDS = {
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
            "circuit_prompts": 0,
        },
    ),
    "eviction": (
        "sentiment_arbitrary",
        {"shots": 4, "prompts": 2, "train": False, "lengths": (512,), "rates": (0.5,)},
    ),
    "block-relevance": ("ranking", {"prompts": 4, "docs": 4, "chunk": 2}),
    "demo": ("demo", {"n": 2, "shots": (0, 1), "circuit_prompts": 16, "ablation_prompts": 2}),
}
FIGURE_WIDTHS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(e => ({
    title: (e.layout.title || {}).text || '', width: e.getBoundingClientRect().width}))"""


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    root = tmp_path_factory.mktemp("kind-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STATIC_ENV, "0")
        for kind, (task, values) in KINDS.items():
            analysis = get(kind)
            run_analysis(
                analysis,
                analysis.config_type(**values),
                out=root,
                model="organism",
                task=task,
                log=lambda _: None,
            )
    log = tmp_path_factory.mktemp("kinds-log") / "server.log"
    with explorer_server(root, log) as url:
        yield url, root, log


def test_every_kind_s_run_page_draws_its_figures_wide(every_kind, tmp_path, record_property):
    from playwright.sync_api import sync_playwright

    url, root, log = every_kind
    shots = Path(os.environ.get("ICLSCOPE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    record_property("screenshots", str(shots))
    print(f"run-page screenshots in {shots}")
    runs = sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())
    assert {r.rsplit("-", 3)[0] for r in runs} == set(KINDS)
    narrow = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 6000})
        for run in runs:
            page.goto(f"{url}/?run={run}")
            page.wait_for_selector(".js-plotly-plot", timeout=180_000)
            time.sleep(3)  # the last figures draw after the first
            widths = page.evaluate(FIGURE_WIDTHS)
            assert widths, run
            narrow[run] = [w for w in widths if w["width"] < WIDTH / 2]
            kind = run.rsplit("-", 3)[0]
            page.screenshot(path=str(shots / f"run-{kind}.png"), full_page=True)
            errors = page.locator("[data-testid='stException']")
            assert errors.count() == 0, run
        browser.close()
    assert not any(narrow.values()), narrow
    assert sorted(p.name for p in shots.glob("run-*.png")) == sorted(f"run-{k}.png" for k in KINDS)
    server = log.read_text()
    assert "Traceback" not in server, server[-3000:]


def test_the_atlas_page_links_a_head_to_the_run_view_on_that_head(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    root = tmp_path / "runs"
    write_atlas_runs(root, tmp_path / "elsewhere")
    # the server is another process: the atlas's registry entry reaches it as a sitecustomize
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"from interp.analysis.registry import AnalysisEntry, register\nregister({ATLAS_ENTRY!r})\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    shots = Path(os.environ.get("ICLSCOPE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "server.log"
    with explorer_server(root, log) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 4000})
        page.goto(f"{url}/?run={ATLAS}")
        page.get_by_text("L1H0 is in 2 role(s)").wait_for(timeout=180_000)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        widths = page.evaluate(FIGURE_WIDTHS)
        assert len(widths) == 1 and "role grid" in widths[0]["title"], widths
        assert all(w["width"] >= WIDTH / 2 for w in widths), widths
        link = page.locator(f"a[href*='run={CIRCUIT}']").first
        href = link.get_attribute("href")
        assert href and href.endswith(f"run={CIRCUIT}&head=L1H0"), href
        page.screenshot(path=str(shots / "atlas-head.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0

        page.goto(f"{url}/{href}")  # as the link opens it (in a new tab)
        page.get_by_text("rows for head L1H0").wait_for(timeout=60_000)
        page.get_by_text("step3_heads: 1 of 6 rows").wait_for(timeout=60_000)
        assert page.locator("[data-testid='stException']").count() == 0
        browser.close()
    server = log.read_text()
    assert "Traceback" not in server, server[-3000:]
