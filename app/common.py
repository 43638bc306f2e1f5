"""What every explorer page shares: opening a run safely, showing its figures, the role colours.

Pages never read a run directory themselves: they go through :func:`open_run`, which resolves an
untrusted name inside the runs root (:func:`interp.runs.store.resolve_run`) and turns a damaged
run into one error line instead of an exception on the page.
"""

from __future__ import annotations

import html
import os
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from app.format import integer_axes
from interp.errors import IclscopeError
from interp.runs.store import Run, list_runs, load_run, resolve_run

ROLE_COLOURS = {
    "x": "#9ecae1",
    "s": "#fdae6b",
    "y": "#74c476",
    "x_q": "#3182bd",
    "s_q": "#e6550d",
    "block": "#bcbddc",
    "template": "#d9d9d9",
}
"""One colour per role, the same in the token strip, the attention chart and every task."""
ROLE_NAMES = {
    "x": "input x",
    "s": "forerunner s",
    "y": "label y",
    "x_q": "query input x_q",
    "s_q": "query forerunner s_q",
    "block": "document",
    "template": "template",
}
STATUS_NOTES = {
    "running": "this run is still being written: reload to see more",
    "failed": "this run failed: {error}",
    "interrupted": "this run was stopped ({error}); what it wrote before the stop is shown",
    "stale": "this run's process ended without finishing it (killed, or out of memory); what "
    "it wrote before is shown",
}
"""What the run page says above a run that did not complete (see interp.runs.store.run_status)."""


def role_kind(role: str) -> str:
    """``x_3`` -> ``x``; the query roles keep their name; template text is ``template``."""
    if role in ("x_q", "s_q"):
        return role
    return role.split("_")[0] or "template"


def open_run(root: str, name: str) -> Run | None:
    """Load a run by name, or show why it cannot be shown (never raise into the page)."""
    try:
        return load_run(resolve_run(root, name))
    except IclscopeError as err:
        st.error(f"broken run {name!r}: {err}")
        return None


def runs_stamp(root: str) -> tuple:
    """What changes when a run under ``root`` changes: per run folder, its name and time, and
    the time, size and inode of its manifest and summary (both are replaced whole on write)."""
    try:
        folders = sorted(
            (d for d in os.scandir(root) if d.is_dir() and not d.name.startswith(".")),
            key=lambda d: d.name,
        )
    except OSError:
        return ()
    stamp = []
    for d in folders:
        item: list[Any] = [d.name]
        for path in (d.path, *(os.path.join(d.path, f) for f in ("manifest.json", "summary.json"))):
            try:
                info = os.stat(path)
                item += [info.st_mtime_ns, info.st_size, info.st_ino]
            except OSError:
                item.append(None)
        stamp.append(tuple(item))
    return tuple(stamp)


@st.cache_data(show_spinner=False, max_entries=32)
def _listed(root: str, stamp: tuple) -> list[dict[str, Any]]:
    return list_runs(root)


def listed_runs(root: str) -> list[dict[str, Any]]:
    """:func:`interp.runs.store.list_runs`, read again only when a run folder, manifest or
    summary changed (every rerun of a page lists the runs; most find nothing new).

    A ``running`` run turns ``stale`` when its process dies, which changes no file: while any
    run is running, the list is read afresh.
    """
    entries = _listed(str(root), runs_stamp(str(root)))
    if any(e["status"] == "running" for e in entries):
        return list_runs(root)
    return entries


def show_figures(run: Run, names: list[str], key: str) -> None:
    """Each figure full width, with integer layer/head axes (older runs were saved without)."""
    for name in names:
        st.plotly_chart(
            integer_axes(go.Figure(run.figures[name])), width="stretch", key=f"{key}-{name}"
        )


def role_legend(kinds: list[str] | None = None) -> str:
    """The colour key of the roles, as HTML chips."""
    chips = [
        f'<span class="role-chip" style="background:{ROLE_COLOURS[k]};padding:1px 6px;'
        f'margin-right:6px;border-radius:3px">{html.escape(ROLE_NAMES[k])}</span>'
        for k in (kinds or list(ROLE_COLOURS))
    ]
    return '<div class="legend">' + "".join(chips) + "</div>"


def coloured_tokens(tokens: list[str], roles: list[str]) -> str:
    """Tokens as HTML spans coloured by their annotated role."""
    spans = []
    for tok, role in zip(tokens, roles):
        colour = ROLE_COLOURS[role_kind(role)]
        text = html.escape(tok).replace("\n", "\u21b5")
        spans.append(
            f'<span class="tok" title="{html.escape(role)}" style="background:{colour};'
            f'padding:1px 3px;margin:1px;border-radius:3px">{text}</span>'
        )
    return '<div class="tokens">' + "".join(spans) + "</div>"


def page_style() -> None:
    """The report's headings at reading size and its wide tables scrolling in place."""
    st.html(
        "<style>.st-key-report h1{font-size:1.5rem}.st-key-report h2{font-size:1.25rem}"
        ".st-key-report h3,.st-key-report h4{font-size:1.05rem}"
        ".st-key-report table{display:block;overflow-x:auto;max-width:100%}"
        "[data-testid='stTable'] tbody th{white-space:nowrap}"  # run ids on one line
        # the runs list (a Markdown table) as st.table draws: small text, grey headings and ids
        ".st-key-runs_list table{font-size:0.875rem;line-height:1.5}"
        ".st-key-runs_list th,.st-key-runs_list td{padding:4px 8px}"
        ".st-key-runs_list th,.st-key-runs_list td:first-child{font-weight:400;"
        "color:color-mix(in srgb,currentColor 70%,transparent)}"
        ".st-key-runs_list td:first-child{white-space:nowrap}</style>"
    )


def shift_headings(markdown: str, by: int = 2) -> str:
    """Every markdown heading ``by`` levels smaller (a report's ``#`` is a page title)."""
    out, fenced = [], False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            line = "#" * by + line
        out.append(line)
    return "\n".join(out)
