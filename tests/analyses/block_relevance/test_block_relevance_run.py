"""The block-relevance run on the tiny Llama: its summary and tables, the same summary from
the command line on nnsight, the explorer page with the documents' relevance, and the
refusal of a task that is not ranking."""

from __future__ import annotations

import pytest

# ---------------------------------------------------------------------------------------------
# The run and the command line


@pytest.fixture(scope="module")
def tiny_run(tiny_dirs, tmp_path_factory):
    from interp.runs.block_relevance import run_block_relevance

    root = tmp_path_factory.mktemp("br_runs")
    path = run_block_relevance(
        root, tiny_dirs["llama"], "ranking", prompts=6, docs=5, log=lambda _: None
    )
    return root, path


def test_run_writes_summary_keys_and_tables(tiny_run):
    from interp.runs import load_run

    run = load_run(tiny_run[1])
    keys = {
        "best_layer",
        "best_head",
        "p_at_1_best",
        "p_at_1_calibrated",
        "mrr_best",
        "ndcg10_best",
        "p_at_1_decoded",
        "p_at_1_block_sparse",
        "seconds",
    }
    assert keys <= set(run.summary)
    heads = run.tables["heads"]
    assert set(heads.split) == {"select", "test", "seen", "unseen"}
    assert set(heads.variant) == {"raw", "calibrated", "block_sparse"}
    test = heads[(heads.variant == "raw") & (heads.split == "test")]
    best = test[
        (test.layer == run.summary["best_layer"]) & (test["head"] == run.summary["best_head"])
    ]
    assert best.p_at_1.iloc[0] == pytest.approx(run.summary["p_at_1_best"])
    prompts = run.tables["prompts"]
    assert len(prompts) == 3 * 5  # held-out prompts x documents
    assert (prompts.groupby("prompt").gold.sum() == 1).all()


def test_cli_run_on_nnsight_gives_the_transformer_lens_summary(tiny_run, tiny_dirs):
    from interp.cli import main
    from interp.runs import load_run

    root, tl_path = tiny_run
    out = root / "nnsight"
    args = ["run", "block-relevance", "--model", tiny_dirs["llama"], "--task", "ranking"]
    args += ["--prompts", "6", "--docs", "5", "--backend", "nnsight", "--out", str(out)]
    assert main(args) == 0
    (path,) = out.glob("block-relevance-*")
    run, tl = load_run(path), load_run(tl_path)
    assert run.manifest["params"]["backend"] == "nnsight"
    assert run.summary.keys() == tl.summary.keys()
    # the calibrated keys are left out: layer 0's relevance does not depend on the query, so
    # its calibrated relevance is 0 on TransformerLens and ~6e-8 of rounding on nnsight, and
    # the ranks (hence the best calibrated head and the position counts) follow the noise
    for key, value in tl.summary.items():
        if key != "seconds" and "calibrated" not in key and key != "positional_heads":
            same = pytest.approx(value, abs=1e-5) if isinstance(value, float) else value
            assert run.summary[key] == same, key


def test_explorer_page_shows_documents_with_relevance(tiny_run):
    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from app.block_relevance_page import block_relevance_view
        from interp.runs import load_run

        block_relevance_view(load_run(st.session_state["path"]), "br")

    at = AppTest.from_function(page, default_timeout=60)
    at.session_state["path"] = str(tiny_run[1])
    at.run()
    assert not at.exception
    html = " ".join(m.value for m in at.markdown)
    assert html.count('class="doc"') == 5 and " gold " in html
    at.radio(key="br_col").set_value("calibrated").run()
    assert not at.exception


def test_cli_refuses_a_non_ranking_task(capsys, tmp_path):
    from interp.cli import main

    code = main(
        [
            "run",
            "block-relevance",
            "--model",
            "organism",
            "--task",
            "sentiment_arbitrary",
            "--out",
            str(tmp_path / "runs"),
        ]
    )
    assert code == 2
    assert "ranking" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
