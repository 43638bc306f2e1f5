"""The explorer's pages, each a function of the runs root (and Streamlit's state).

Kept apart from ``explorer.py`` so that tests can drive one page at a time with
``streamlit.testing.v1.AppTest`` and so that every page reads run directories only through
:mod:`interp.runs.store` (which refuses paths outside the runs root). The pages live in their
own modules (:mod:`app.runs_list`, :mod:`app.run_view`, :mod:`app.prompt_view`,
:mod:`app.compare_view`; formatting rules in :mod:`app.format`); this module holds the run page,
where a run kind with a page of its own plugs in, and keeps the names it always exported.
"""

from __future__ import annotations

import streamlit as st

# Heavy imports happen once, here: Streamlit reruns the page in threads, and a lazy import that
# races another rerun can see a half-initialised module ("cannot import name AutoConfig").
import transformers  # noqa: E402
from transformer_lens.model_bridge import TransformerBridge  # noqa: E402, F401

from app.common import ROLE_COLOURS, STATUS_NOTES, coloured_tokens, open_run, show_figures
from app.compare_view import compare_page
from app.prompt_view import buildable_families, cached_model, prompt_page
from app.run_view import (
    STEP_FIGURES,
    run_figures,
    run_header,
    run_links,
    run_summary,
    run_tables,
)
from app.runs_list import runs_page, runs_table

__all__ = [
    "ROLE_COLOURS",
    "STATUS_NOTES",
    "STEP_FIGURES",
    "buildable_families",
    "cached_model",
    "coloured_tokens",
    "compare_page",
    "open_run",
    "prompt_page",
    "run_page",
    "runs_page",
    "runs_table",
    "show_figures",
]

_LOADED = (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModelForCausalLM)


def run_page(root: str, name: str) -> None:
    """One run: header and status, links, figures (left), summary and report (right), tables.

    A run kind with a page of its own adds one ``elif`` below, in place of the generic figures.
    """
    run = open_run(root, name)
    if run is None:
        return
    m = run.manifest
    run_header(run, name)
    run_links(root, run)
    left, right = st.columns([3, 2])
    with left:
        if m.get("kind") == "eviction":
            from app.eviction_page import eviction_view

            eviction_view(run, name)
        elif m.get("kind") == "block-relevance":
            from app.block_relevance_page import block_relevance_view

            block_relevance_view(run, name)
        elif m.get("kind") == "task-vectors":
            from app.task_vectors_page import task_vectors_view

            task_vectors_view(run, name)
        else:
            run_figures(run, name)
    with right:
        run_summary(run)
    run_tables(run, name)
