"""The generic run page: header, the summary as a formatted table, the report at reading size
with each figure full width in the section that discusses it, every table formatted, and the
run's provenance.

Run kinds with a page of their own (task vectors, eviction, block relevance) plug in through the
dispatch in :func:`app.views.run_page`; this module is what every other kind gets.
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from app.common import STATUS_NOTES, listed_runs, page_style, shift_headings, show_figures
from app.format import (
    human_time,
    model_name,
    short_id,
    sig,
    summary_rows,
    table_config,
    tidy_table,
)
from interp.runs.reports import FIGURE_LINE, place_figures
from interp.runs.store import Run

STEP_FIGURES = {
    "Step 1: summarize": ("step1",),
    "Step 2: semantics merge": ("step2",),
    "Step 3: retrieve and copy": ("step3",),
    "Ablations": ("ablation",),
}
SECTIONS = {
    "circuit": STEP_FIGURES,
    "demo": {
        "Held-out evaluation": ("icl_curve",),
        "One prompt, inside": ("logit_lens", "query_attention"),
        **STEP_FIGURES,
    },
}
"""Per run kind, its figures grouped under the headings its report uses."""
HEAD_ADDRESS = re.compile(r"^L(?P<layer>\d+)H(?P<head>\d+)$")
"""A head as the address names it (``head=L3H2``), as the atlas page's links write it."""


def run_header(run: Run, name: str) -> None:
    """Who, what and how the run ended, in one line; a note above a run that did not complete."""
    m = run.manifest
    t = m.get("timings") or {}
    st.header(short_id(name))
    took = f", took {sig(t['seconds'], 2)} s" if t.get("seconds") is not None else ""
    started = human_time(t.get("started"))
    st.caption(
        f"{m.get('kind')} on {model_name(m.get('model'))}, task {m.get('task')}, "
        f"status {run.status}, started {started}{took} · {name}"
    )
    note = STATUS_NOTES.get(run.status)
    if note:
        st.warning(note.format(error=m.get("error")))


def summary_table(summary: dict) -> pd.DataFrame:
    """The summary's numbers at 2-3 significant figures, one row each."""
    return pd.DataFrame(summary_rows(summary), columns=["measure", "value"]).set_index("measure")


def show_table(df: pd.DataFrame, key: str) -> None:
    """A table with layer and head as integers and floats at 3 significant figures."""
    tidy = tidy_table(df)
    st.dataframe(tidy, hide_index=True, column_config=table_config(tidy), key=key)


def figure_sections(run: Run) -> list[tuple[str | None, list[str]]]:
    """The run's figures under their section headings (``None``: no heading)."""
    sections, shown = [], set()
    for title, prefixes in SECTIONS.get(str(run.manifest.get("kind")), {}).items():
        names = [f for f in run.figures if f.startswith(prefixes) and f not in shown]
        if names:
            sections.append((title, names))
            shown |= set(names)
    rest = [f for f in run.figures if f not in shown]
    return sections + ([(None, rest)] if rest else [])


def related_runs(root: str, run: Run) -> list[str]:
    """Runs this one produced: named in its ``params.produced``, or naming it as ``parent``."""
    produced = list((run.manifest.get("params") or {}).get("produced") or [])
    for entry in listed_runs(root):
        if entry["run_id"] in produced or entry["run_id"] == run.path.name:
            continue
        params = _params(root, entry["run_id"])
        if params.get("parent") == run.path.name:
            produced.append(entry["run_id"])
    return produced


def _params(root: str, run_id: str) -> dict:
    import json
    from pathlib import Path

    try:
        manifest = json.loads((Path(root) / run_id / "manifest.json").read_text())
        return manifest.get("params") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def _open_run(run_id: str) -> None:
    st.session_state["page"] = "Runs"
    st.session_state["run_pick"] = run_id
    st.query_params["run"] = run_id


def _open_prompt(model: str, task: str, shots: int, seed: int) -> None:
    """Preset the prompt view on a run's prompt and switch to it."""
    st.session_state.update(
        {
            "page": "Prompt view",
            "prompt_preset": {"model": model, "task": task, "shots": shots, "seed": seed},
        }
    )


def run_links(root: str, run: Run) -> None:
    """Buttons to what this run leads to: the prompt it looked inside, the runs it produced."""
    m = run.manifest
    params = m.get("params") or {}
    if m.get("kind") == "demo" and params.get("circuit_task"):
        st.button(
            "Open its prompt in the Prompt view",
            key="link_prompt",
            on_click=_open_prompt,
            args=(m.get("model"), params["circuit_task"], 4, int(m.get("seed") or 0)),
            help="the prompt of 'One prompt, inside', with live attention",
        )
    produced = related_runs(root, run)
    if m.get("kind") == "demo":
        more = f"; it also produced {len(produced)} run(s):" if produced else "."
        st.caption("The evaluation, the prompt and the circuit are sections of this run" + more)
    for run_id in produced:
        st.button(
            f"open {short_id(run_id)}", key=f"link_{run_id}", on_click=_open_run, args=(run_id,)
        )


def run_figures(run: Run, name: str) -> None:
    """The run's figures under their section headings."""
    for title, names in figure_sections(run):
        if title:
            st.subheader(title)
        show_figures(run, names, f"{name}-{title}")
    if not run.figures:
        st.info("no figures yet" if run.status == "running" else "this run has no figures")


def run_summary(run: Run) -> None:
    """The summary as a formatted table, in a closed expander (the report says it in words)."""
    page_style()
    if run.summary:
        with st.expander(f"summary ({len(run.summary)} numbers)"):
            st.table(summary_table(run.summary))


def report_pieces(run: Run) -> list[tuple[str, str]]:
    """The report as ("text", markdown) and ("figure", name) pieces, each figure where the
    report shows it; an older report without figure lines gets them at the end of the section
    its figures belong to (:func:`figure_sections`)."""
    placement = {f: title for title, names in figure_sections(run) if title for f in names}
    markdown = place_figures(run.report or "", placement, run.figures)
    pieces: list[tuple[str, str]] = []
    text: list[str] = []
    for line in markdown.split("\n"):
        m = FIGURE_LINE.match(line.strip())
        if m and m["name"] in run.figures:
            pieces += [("text", "\n".join(text)), ("figure", m["name"])]
            text = []
        else:
            text.append(line)
    pieces.append(("text", "\n".join(text)))
    return [(kind, value) for kind, value in pieces if value.strip()]


def run_report(run: Run, name: str, figures: bool = True) -> None:
    """The report at reading size, full width, with each figure drawn full width in the
    section that discusses it; ``figures=False`` (a kind whose page draws its own) leaves the
    figure lines out."""
    with st.container(key="report"):
        for kind, value in report_pieces(run):
            if kind == "text":
                st.markdown(shift_headings(value))
            elif figures:
                show_figures(run, [value], f"{name}-report")
    if not run.figures and figures:
        st.info("no figures yet" if run.status == "running" else "this run has no figures")


def head_rows(run: Run, name: str) -> None:
    """When the address names a head (``head=L3H2``: the atlas page links each run it read on
    one head), that head's rows of every table with ``layer`` and ``head`` columns, so the
    numbers behind its scores are found without searching each table."""
    wanted = st.query_params.get("head")
    if not wanted:
        return
    st.subheader(f"rows for head {wanted}")
    at = HEAD_ADDRESS.match(wanted)
    if at is None:
        st.warning(f"head={wanted!r} names no head: write it as L3H2 (layer 3, head 2)")
        return
    layer, head = int(at["layer"]), int(at["head"])
    tables = {t: df for t, df in run.tables.items() if {"layer", "head"} <= set(df.columns)}
    for table_name, table in tables.items():
        layers, heads = (pd.to_numeric(table[c], errors="coerce") for c in ("layer", "head"))
        rows = table[(layers == layer) & (heads == head)]
        st.caption(f"{table_name}: {len(rows)} of {len(table)} rows")
        if len(rows):
            show_table(rows, key=f"{name}-head-{table_name}")
    if not tables:
        st.info("no table of this run has layer and head columns")
    st.button("show every head", key=f"{name}-every-head", on_click=_every_head)


def _every_head() -> None:
    del st.query_params["head"]


def run_tables(run: Run, name: str) -> None:
    """Every table, formatted, and the run's provenance.

    What sits in a closed expander is drawn when the expander is opened (its state reruns the
    page): the grid, code and JSON viewers are large scripts for the browser, and loading them
    for closed expanders made the runs list above wait for them on the first page.
    """
    head_rows(run, name)
    if "top_components" in run.tables:
        st.subheader("Top components")
        show_table(run.tables["top_components"], key=f"{name}-top")
    for table_name, table in run.tables.items():
        label = f"table {table_name} ({len(table)} rows)"
        with st.expander(label, key=f"open-{name}-table-{table_name}", on_change="rerun") as box:
            if box.open:
                show_table(table, key=f"{name}-table-{table_name}")
    details = "run details: command, seed, versions, timings"
    with st.expander(details, key=f"open-{name}-details", on_change="rerun") as box:
        if box.open:
            m = run.manifest
            command = m.get("command")
            line = " ".join(command) if isinstance(command, list) else str(command)
            st.code(line, language="bash")
            st.json(
                {k: m.get(k) for k in ("seed", "params", "versions", "timings", "error")},
                expanded=False,
            )
