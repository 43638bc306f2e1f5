"""The runs list: every run directory under the root, broken ones with their reason, filtered
and sorted by kind, model, task and status; the newest complete run opens by default."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import streamlit as st

from app.common import listed_runs, page_style
from app.format import headline, human_time, model_name, run_label, short_id

SHOWN = ["run", "status", "kind", "model", "task", "started", "headline", "reason"]
"""The columns of the list as a user reads it (the full id is the table's ``id`` column)."""
SORTS = {
    "newest first": ("order", True),
    "oldest first": ("order", False),
    "kind": ("kind", True),
    "model": ("model", True),
    "status": ("status", True),
}
FILTERS = ("kind", "model", "task", "status")
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
"""ASCII punctuation: each is escaped in a Markdown cell, so a cell shows its text as it is
(no emphasis, HTML, math, emoji or colour directives; a ``|`` does not end the cell). A bare web
address (``www.…``, ``https://…``) still shows as a link: GitHub Markdown links it after escapes."""


def runs_table(root: str) -> pd.DataFrame:
    """One row per run directory, newest first: broken runs included, with their reason."""
    prefix = str(Path(root).resolve()) + "/"
    rows = []
    for order, r in enumerate(listed_runs(root)):  # newest first; a broken run by its mtime
        command = r.get("command")
        reason = r.get("reason") or ""
        rows.append(
            {
                "id": r["run_id"],
                "order": order,
                "run": short_id(r["run_id"]),
                "status": r["status"],
                "kind": r.get("kind") or "—",
                "model": model_name(r.get("model")),
                "task": r.get("task") or "—",
                "started": human_time(r.get("started")),
                "started_at": r.get("started") or "",
                "headline": headline(r["summary"], r.get("kind")),
                "reason": reason.replace(prefix, "").replace(str(root).rstrip("/") + "/", ""),
                "command": " ".join(command) if isinstance(command, list) else command,
                "label": run_label(r),
            }
        )
    columns = ["id", *SHOWN, "order", "started_at", "command", "label"]
    return pd.DataFrame(rows, columns=columns)


def default_run(table: pd.DataFrame) -> str | None:
    """The newest complete run (the table is newest first), else the newest run of all."""
    if table.empty:
        return None
    complete = table[table.status == "complete"]
    return str((complete if len(complete) else table).id.iloc[0])


def filter_runs(
    table: pd.DataFrame, picks: dict[str, list[str]], query: str = "", sort: str = "newest first"
) -> pd.DataFrame:
    """The rows whose kind/model/task/status are among ``picks`` (empty: any) and whose text
    holds ``query``, in the chosen order."""
    keep = pd.Series(True, index=table.index)
    for column, wanted in picks.items():
        if wanted:
            keep &= table[column].isin(wanted)
    if query:
        text = table[["id", *SHOWN]].astype(str).agg(" ".join, axis=1).str.lower()
        keep &= text.str.contains(query.lower(), regex=False)
    column, ascending = SORTS[sort]
    return table[keep].sort_values(column, ascending=ascending, kind="stable")


def markdown_cell(value: object) -> str:
    """One table cell of Markdown that reads as ``value``'s text, on one line."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(value).split()))


def runs_markdown(shown: pd.DataFrame) -> str:
    """The list as a Markdown table, one row per run, every cell escaped.

    Drawn with ``st.markdown`` rather than ``st.table``: the browser draws Markdown with the
    page's own script, as soon as it arrives, while ``st.table`` loads a script of its own
    first. On the first page that load came with the Plotly script of the run opened below
    (4.7 MB, about 1 s of the browser's main thread to start), React holds a loaded element
    back until 0.5 s after the page's last placeholder, and so the list appeared with the
    figures, about 3.4 s after the server was up instead of 1.1 s
    (``scripts/explorer_first_page.py``).
    """
    rows = [[markdown_cell(c) for c in shown.columns], ["---"] * len(shown.columns)]
    rows += [[markdown_cell(v) for v in row] for row in shown.itertuples(index=False)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def runs_page(root: str) -> str | None:
    """The list with its filters; returns the run id to open below it."""
    st.header("Runs")
    page_style()
    table = runs_table(root)
    if table.empty:
        st.info(f"no runs under {root}: write one with `iclscope demo` or `iclscope run patch`")
        return None
    cols = st.columns([1, 1, 1, 1, 1, 2])
    picks = {
        f: cols[i].multiselect(f, sorted(table[f].unique()), key=f"f_{f}", placeholder="any")
        for i, f in enumerate(FILTERS)
    }
    sort = cols[4].selectbox("sort", list(SORTS), key="sort")
    query = cols[5].text_input("filter runs", "", key="filter", placeholder="any text")
    shown = filter_runs(table, picks, query, sort)
    # a real HTML table: readable by people and by browsers alike; wide cells wrap
    st.container(key="runs_list").markdown(runs_markdown(shown[SHOWN]))
    st.caption(f"{len(shown)} of {len(table)} runs under {root}")
    if shown.empty:
        st.info("no run matches these filters")
        return None
    names = shown.id.tolist()
    labels = dict(zip(shown.id, shown.label))
    wanted = st.query_params.get("run")
    first = wanted if wanted in names else default_run(shown)
    chosen = st.selectbox(
        "open run",
        names,
        index=names.index(first),
        key="run_pick",
        format_func=lambda n: labels.get(n, n),
    )
    if chosen and st.query_params.get("run") != chosen:
        st.query_params["run"] = chosen  # the address names the open run: shareable
    return chosen
