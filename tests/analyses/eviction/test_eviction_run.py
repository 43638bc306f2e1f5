"""The eviction run end to end: ``run eviction`` on the tiny Llama, its refusals of bad rates
and methods, the explorer page (in AppTest and in Chromium), and the key-value prompts
(distinct digit keys, Gemma's single BOS)."""

from __future__ import annotations

import pytest

# ---- the run, the command line and the explorer page ----------------------------------------


@pytest.fixture(scope="module")
def eviction_run(tiny_dirs, tmp_path_factory):
    from interp.cli import main

    root = tmp_path_factory.mktemp("evruns")
    args = [
        "run",
        "eviction",
        "--model",
        tiny_dirs["llama"],
        "--task",
        "sentiment_arbitrary",
        "--shots",
        "4",
        "--prompts",
        "4",
        "--gate-prompts",
        "4",
        "--gate-epochs",
        "2",
        "--out",
        str(root),
    ]
    assert main(args) == 0
    return root, next(root.glob("eviction-*"))


def test_run_eviction_writes_every_method_rate_and_the_gate(eviction_run):
    from interp.runs.store import load_run

    _, path = eviction_run
    run = load_run(path)
    s = run.summary
    assert {"accuracy_full", "by_method", "gate_rate", "gate_accuracy", "seconds"} <= set(s)
    methods = {
        "streaming_llm",
        "h2o",
        "snapkv",
        "tova",
        "random",
        "gate",
        "gate_window",
        "gate_pooled",
    }
    assert set(s["by_method"]) == methods
    assert all(set(v) == {"0.25", "0.5", "0.75"} for v in s["by_method"].values())
    assert 0.0 <= s["gate_rate"] <= 1.0 and 0.0 <= s["accuracy_full"] <= 1.0
    curves = run.tables["curves"]
    measured = curves[curves.method != "full"]
    # every method evicts the rate asked for, to within rounding of the budget
    assert (measured.measured_rate - measured.rate).abs().max() < 0.1
    assert (path / "gate" / "gate.pt").exists() and (path / "gate" / "training.json").exists()
    assert {"accuracy_vs_rate", "heads_snapkv", "tokens_kept"} <= set(run.figures)


def test_bad_rates_and_methods_are_refused_before_any_run(tmp_path, capsys):
    from interp.cli import main

    for bad in (["--rates", "0.5,1.5"], ["--methods", "snapkv,lru"]):
        code = main(
            ["run", "eviction", "--model", "tiny-llama", "--out", str(tmp_path / "r"), *bad]
        )
        assert code == 2 and "fix:" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_eviction_page_shows_curves_and_kept_tokens(eviction_run, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root, path = eviction_run
    monkeypatch.setenv("ICLSCOPE_RUNS", str(root))
    app = str(Path(__file__).resolve().parents[3] / "app" / "explorer.py")
    at = AppTest.from_file(app, default_timeout=120).run()
    at.selectbox(key="run_pick").set_value(path.name).run()
    assert not at.exception
    heads = [h.value for h in at.subheader]
    assert "Accuracy against eviction rate" in heads
    assert any(h.startswith("Kept and evicted tokens") for h in heads)
    at.selectbox(key="evict_method").set_value("snapkv").run()
    assert not at.exception
    assert any('class="tokens"' in m.value for m in at.markdown)


@pytest.mark.skipif(
    not __import__("os").path.exists("/usr/bin/chromium"), reason="LOUD SKIP: chromium is missing"
)
def test_eviction_page_in_chromium(eviction_run):
    """The served explorer in a real browser: the curves drawn, every prompt token coloured."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from playwright.sync_api import sync_playwright

    root, path = eviction_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "interp.cli", "app", "--runs", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.goto(f"{url}/?run={path.name}")
            page.get_by_text("Kept and evicted tokens").first.wait_for(timeout=120_000)
            page.wait_for_selector("span.tok", timeout=60_000)
            shades = page.locator("span.tok").evaluate_all(
                "els => els.map(e => getComputedStyle(e).backgroundColor)"
            )
            assert len(shades) > 5 and len(set(shades)) >= 2, shades  # kept, evicted, final
            page.wait_for_selector(".js-plotly-plot", timeout=120_000)
            titles = page.evaluate(
                "() => [...document.querySelectorAll('.js-plotly-plot')]"
                ".map(e => ((e.layout || {}).title || {}).text || '')"
            )
            assert any("against eviction rate" in t for t in titles), titles
            errors = page.locator("[data-testid='stException']")
            assert errors.count() == 0
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_digit_keys_are_distinct_three_digit_numbers_with_the_asked_value():
    import random

    from circuits.eviction.prompts import sample_digit_kv

    ep = sample_digit_kv(random.Random(0), 50)
    keys = [k for k, _ in ep.docs]
    assert len(set(keys)) == 50 and all(len(k) == 3 and k.isdigit() for k in keys)
    assert ep.docs[ep.meta["index"]] == (ep.query, ep.answer)


@pytest.fixture(scope="module")
def gemma_tokenizer():
    from transformers import AutoTokenizer

    from interp.models.registry import get_entry

    # converted on first use, as the real-model tests do: this check must never be skipped
    folder = get_entry("gemma3-270m").materialize()
    return AutoTokenizer.from_pretrained(folder), str(folder)


@pytest.mark.parametrize("kv_keys", ["words", "digits"])
def test_gemma_key_value_prompts_start_with_one_bos(gemma_tokenizer, kv_keys):
    """Gemma needs its BOS, and its tokenizer says ``add_bos_token=False`` yet adds one when
    called on text: the eviction prompts must start with exactly one ``<bos>``, at every
    length, and be the tokens the tokenizer itself gives the prompt's text."""
    from circuits.eviction.prompts import eviction_builder, eviction_settings

    tokenizer, folder = gemma_tokenizer
    builder = eviction_builder(tokenizer, folder)
    settings = eviction_settings(builder, "nl_kv_words", 0, 4, [64, 256], 0, kv_keys)
    bos = tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(bos) == "<bos>"
    for batch in settings.values():
        for row, mask, text in zip(batch.tokens, batch.attention_mask, batch.texts):
            real = row[mask.bool()].tolist()
            assert real[0] == bos and real.count(bos) == 1
            assert real == tokenizer(text).input_ids  # the tokenizer's own BOS, no second one


def _pairs(summary: dict, value_key: str):
    """Every (value, interval) pair under ``value_key`` and ``value_key_ci``, nested or not."""
    value, ci = summary[value_key], summary[f"{value_key}_ci"]
    if isinstance(value, dict):
        return [p for k in value for p in _pairs({"v": value[k], "v_ci": ci[k]}, "v")]
    return [(value, ci)]


def test_every_headline_accuracy_has_an_interval_that_brackets_it(eviction_run):
    from interp.runs.store import load_run

    _, path = eviction_run
    s = load_run(path).summary
    pairs = []
    for key in ("accuracy_full", "by_method", "gate_accuracy", "gate_rate", "by_setting"):
        pairs += _pairs(s, key)
    # full, 8 methods x 3 rates, the gate's accuracy and rate; the one setting's full and methods
    assert len(pairs) == 1 + 8 * 3 + 2 + (1 + 8 * 3)
    for value, (low, high) in pairs:
        assert 0.0 <= low <= value <= high <= 1.0
    # 4 prompts say little: a Wilson interval on 4 is wide, never a point
    assert all(high - low > 0.2 for v, (low, high) in _pairs(s, "by_method"))
    report = (path / "report.md").read_text()
    assert f"{s['accuracy_full']:.3f} [{s['accuracy_full_ci'][0]:.2f}" in report


def test_summary_intervals_are_wilson_over_prompts_pooled_across_settings():
    import pandas as pd

    from circuits.eviction.evaluate import EvictionResult
    from circuits.eviction.report import eviction_figures, eviction_summary
    from interp.stats import wilson_ci

    curves = pd.DataFrame(
        [
            dict(setting="a", method="full", rate=0.0, accuracy=0.75, measured_rate=0, prompts=8),
            dict(setting="b", method="full", rate=0.0, accuracy=0.5, measured_rate=0, prompts=4),
            dict(setting="a", method="h2o", rate=0.5, accuracy=0.5, measured_rate=0.5, prompts=8),
            dict(setting="b", method="h2o", rate=0.5, accuracy=0.0, measured_rate=0.5, prompts=4),
        ]
    )
    gate = {"a": dict(rate=0.4, accuracy=0.25), "b": dict(rate=0.6, accuracy=1.0)}
    rows = {"a": [0.4] * 8, "b": [0.6] * 4}
    heads = pd.DataFrame(columns=["setting", "method", "rate", "layer", "head", "evicted"])
    result = EvictionResult(curves, heads, pd.DataFrame(), gate, rows)
    s = eviction_summary(result, 1.0, None)
    assert s["accuracy_full"] == round(8 / 12, 4)
    assert s["accuracy_full_ci"] == [round(v, 4) for v in wilson_ci(8, 12)]
    assert s["by_method_ci"]["h2o"]["0.5"] == [round(v, 4) for v in wilson_ci(4, 12)]
    assert s["gate_accuracy_ci"] == [round(v, 4) for v in wilson_ci(6, 12)]
    assert s["by_setting_ci"]["b"]["h2o"]["0.5"] == [0.0, round(wilson_ci(0, 4)[1], 4)]
    low, high = s["gate_rate_ci"]
    assert 0.4 <= low < s["gate_rate"] < high <= 0.6
    fig = eviction_figures(result)["accuracy_vs_rate"]
    bars = [t.error_y.array for t in fig.data if t.error_y.array is not None]
    assert bars and all(b > 0 for arr in bars for b in arr)
