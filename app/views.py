"""The explorer's pages, each a function of the runs root (and Streamlit's state).

Kept apart from ``explorer.py`` so that tests can drive one page at a time with
``streamlit.testing.v1.AppTest`` and so that every page reads run directories only through
:mod:`interp.runs.store` (which refuses paths outside the runs root). The pages live in their
own modules (:mod:`app.runs_list`, :mod:`app.run_view`, :mod:`app.prompt_view`,
:mod:`app.compare_view`; formatting rules in :mod:`app.format`); this module holds the run page,
where a run kind with a page of its own plugs in, and keeps the names it always exported.

Importing this module stays light (Streamlit, pandas and the run store; never torch): the runs
list and the run page are what the explorer opens on, so the prompt view (which loads models)
and the compare view are imported when their page is first shown.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import streamlit as st

from app.common import ROLE_COLOURS, STATUS_NOTES, coloured_tokens, open_run, show_figures
from app.run_view import (
    STEP_FIGURES,
    run_header,
    run_links,
    run_report,
    run_summary,
    run_tables,
)
from app.runs_list import runs_page, runs_table

if TYPE_CHECKING:
    from app.prompt_view import buildable_families, cached_model

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

_LAZY = {"buildable_families": "app.prompt_view", "cached_model": "app.prompt_view"}
"""Names exported from the prompt view's module, imported on first use."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'app.views' has no attribute {name!r}")


def prompt_page() -> None:
    """The prompt view (see :mod:`app.prompt_view`): its module, and the model libraries it
    needs, are imported on the first visit."""
    from app.prompt_view import prompt_page as page

    page()


def compare_page(root: str) -> None:
    """Two runs compared (see :mod:`app.compare_view`), imported on the first visit."""
    from app.compare_view import compare_page as page

    page(root)


def run_page(root: str, name: str) -> None:
    """One run: header and status, links, the summary, the report with its figures full width
    (or a kind's own page, then its report), tables.

    A kind whose registry entry names a page of its own (:mod:`interp.analysis.registry`) gets
    that page in place of the generic figures; importing it is the first time its analysis
    package is imported in the explorer.
    """
    from interp.analysis.registry import known_entry

    run = open_run(root, name)
    if run is None:
        return
    run_header(run, name)
    run_links(root, run)
    entry = known_entry(str(run.manifest.get("kind")))
    page = entry.page_function() if entry is not None else None
    run_summary(run)
    if page is not None:  # the kind's own figures and views, full width, then its report
        page(run, name)
        with st.expander("report", expanded=True):
            run_report(run, name, figures=False)
    else:
        run_report(run, name)
    run_tables(run, name)
