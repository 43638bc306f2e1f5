"""The iclscope explorer: browse run directories in the browser.

Started by ``iclscope app --runs DIR``. It reads only under the runs root: a run name from the
URL or a widget goes through :func:`interp.runs.resolve_run`, which refuses escapes.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import streamlit as st

from interp.errors import IclscopeError
from interp.runs import list_runs, load_run, resolve_run


def runs_root() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default="runs")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.runs


def runs_table(root: str) -> pd.DataFrame:
    rows = [
        {
            "run": r["run_id"], "status": r["status"], "kind": r.get("kind"),
            "model": r.get("model"), "task": r.get("task"), "started": r.get("started"),
            "reason": r.get("reason"),
        }
        for r in list_runs(root)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["run", "status", "kind", "model", "task", "started",
                                       "reason"])  # fmt: skip


def show_run(root: str, name: str) -> None:
    try:
        run = load_run(resolve_run(root, name))
    except IclscopeError as err:
        st.error(f"broken run: {err}")
        return
    st.subheader(f"{name} ({run.status})")
    if run.summary:
        st.json(run.summary)
    for fig_name, fig in run.figures.items():
        st.plotly_chart(fig, key=f"fig-{fig_name}")
    for table_name, table in run.tables.items():
        with st.expander(f"table: {table_name} ({len(table)} rows)"):
            st.dataframe(table)
    if run.report:
        with st.expander("report", expanded=False):
            st.markdown(run.report)


def main() -> None:
    st.set_page_config(page_title="iclscope explorer", layout="wide")
    root = runs_root()
    st.title("iclscope explorer")
    table = runs_table(root)
    st.caption(f"runs under {root}")
    query = st.text_input("filter", "")
    if query:
        table = table[table.apply(lambda r: query.lower() in " ".join(map(str, r)).lower(), 1)]
    st.dataframe(table, hide_index=True)
    names = table["run"].tolist()
    chosen = st.query_params.get("run") or (names[0] if names else None)
    if names:
        pick = st.selectbox("run", names, index=names.index(chosen) if chosen in names else 0)
        chosen = pick
    if chosen:
        show_run(root, chosen)


main()
