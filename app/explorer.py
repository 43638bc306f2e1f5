"""The iclscope explorer, started by ``iclscope app --runs DIR``.

Pages: the runs list (broken runs with their reason; filters; the newest complete run open
below it), a run's figures, summary, report and tables, a prompt view with live attention drawn
on the tokens and a grid of every head, and two runs compared on shared figures. The runs root
comes from ``--runs`` (after ``--`` on the streamlit command line) or ``ICLSCOPE_RUNS``; the
address may name a page and a run (``?page=Compare``, ``?run=<id>``).

The first page imports only what it shows (Streamlit, pandas, the run store; never torch): the
prompt view's model libraries and the compare view are imported when their page is first opened
(see :mod:`app.views`), and the runs are listed again only when a run folder changed.
"""

from __future__ import annotations

import argparse
import os
import sys

import streamlit as st

from app.views import compare_page, prompt_page, run_page, runs_page


def runs_root() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default=os.environ.get("ICLSCOPE_RUNS", "runs"))
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.runs


def main() -> None:
    st.set_page_config(page_title="iclscope explorer", layout="wide")
    root = runs_root()
    st.sidebar.title("iclscope")
    pages = ["Runs", "Prompt view", "Compare"]
    wanted = st.query_params.get("page")
    # the default through the session state only (a run page's links set the same key)
    st.session_state.setdefault("page", wanted if wanted in pages else pages[0])
    page = st.sidebar.radio("page", pages, key="page")
    st.sidebar.caption(f"runs under {root}")
    if page != "Runs" and "run" in st.query_params:
        del st.query_params["run"]  # the address names an open run only on the Runs page
    if page == "Runs":
        chosen = runs_page(root)
        if chosen:
            st.divider()
            run_page(root, chosen)
    elif page == "Prompt view":
        prompt_page()
    else:
        compare_page(root)


main()
