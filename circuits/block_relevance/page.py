"""The explorer's view of a ``block-relevance`` run: precision@1 by layer and head, then one
held-out prompt's documents with their relevance at the best head, the gold document and the
model's decoded answer side by side.

Reads only the run's tables and figures (``prompts``, ``heads``); nothing is recomputed.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from interp.runs.reports import integer_axes  # older runs were saved without
from interp.runs.store import Run

GOLD = "#b7ebb0"
DECODED = "#ffd8a8"


def documents_html(rows: pd.DataFrame, column: str = "relevance") -> str:
    """One prompt's documents in prompt order, each with a bar as long as its relevance (the
    largest one fills the bar); gold in green, the decoded answer in orange."""
    top = max(float(rows[column].abs().max()), 1e-12)
    lines = []
    for r in rows.sort_values("position").itertuples():
        value = getattr(r, column)
        width = round(100 * max(value, 0.0) / top)
        colour = GOLD if r.gold else DECODED if r.doc_id == r.decoded else "#f1f3f5"
        tags = (" gold" if r.gold else "") + (" decoded" if r.doc_id == r.decoded else "")
        lines.append(
            f'<div class="doc" style="background:{colour};margin:2px 0;padding:2px 6px">'
            f"<b>[{html.escape(str(r.doc_id))}]</b>{tags} {value:.3f} "
            f'<span style="display:inline-block;height:8px;width:{width}px;background:#495057">'
            f"</span> {html.escape(str(r.content))}</div>"
        )
    return '<div class="documents">' + "".join(lines) + "</div>"


def seen_unseen(summary: dict) -> str:
    """The precision@1 on seen and on unseen documents, for the caption ("" when a run has
    neither, as older runs do)."""
    seen, unseen = summary.get("p_at_1_seen"), summary.get("p_at_1_unseen")
    if seen is None and unseen is None:
        return ""
    shown = ["-" if v is None else f"{v:.3f}" for v in (seen, unseen)]
    return f"; seen / unseen documents {shown[0]} / {shown[1]}"


def block_relevance_view(run: Run, name: str) -> None:
    """The summary's headline, the figures by layer and head, then a prompt picker."""
    s = run.summary
    if s:
        st.caption(
            f"best head L{s.get('best_layer')}H{s.get('best_head')}: precision@1 "
            f"{s.get('p_at_1_best', float('nan')):.3f} (held-out); decoded "
            f"{s.get('p_at_1_decoded', float('nan')):.3f}; calibrated "
            f"{s.get('p_at_1_calibrated', float('nan')):.3f}" + seen_unseen(s)
        )
    for fig_name in ("by_layer", "p_at_1_raw", "p_at_1_calibrated", "position_bias"):
        if fig_name in run.figures:
            st.plotly_chart(
                integer_axes(run.figures[fig_name]), width="stretch", key=f"{name}-{fig_name}"
            )
    prompts = run.tables.get("prompts")
    if prompts is None or not len(prompts):
        return
    st.subheader("Documents of a held-out prompt, by relevance at the best head")
    ids = sorted(prompts.prompt.unique())
    chosen = st.selectbox("prompt", ids, key="br_prompt")
    column = st.radio("relevance", ["relevance", "calibrated"], horizontal=True, key="br_col")
    rows = prompts[prompts.prompt == chosen]
    verdict = "correct" if bool(rows.correct.iloc[0]) else "wrong"
    st.caption(
        f"decoded answer: {rows.decoded.iloc[0]} ({verdict}); green: gold document, "
        "orange: the decoded one"
    )
    st.markdown(documents_html(rows, column), unsafe_allow_html=True)
