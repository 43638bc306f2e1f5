"""The explorer's view of an ``eviction`` run: accuracy curves, heatmaps per layer and head, and
the first prompt's tokens coloured by how many (layer, head) pairs keep them.

Reads only the run's tables and figures (``curves``, ``by_head``, ``tokens``); nothing is
recomputed, so the page opens as fast as the run directory loads.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from interp.runs.store import Run

FINAL = "#dbe4ff"
"""The final rows (the query line): never evicted, decoded after the eviction."""


def token_colour(kept: float, context: bool) -> str:
    """Green for kept, red for evicted, mixed by the share of (layer, head) pairs keeping the
    token; the final rows in blue."""
    if not context:
        return FINAL
    red, green = (255, 179, 179), (183, 235, 176)
    mix = [round(r + (g - r) * kept) for r, g in zip(red, green)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def kept_tokens_html(rows: pd.DataFrame) -> str:
    """One prompt's tokens as spans coloured by :func:`token_colour`, the share in the title."""
    spans = []
    for r in rows.sort_values("pos").itertuples():
        text = html.escape(r.token).replace("\n", "\u21b5")
        title = f"kept by {r.kept:.2f} of heads" if r.context else "final row"
        colour = token_colour(r.kept, r.context)
        spans.append(
            f'<span class="tok" title="{title}" style="background:{colour};'
            f'padding:1px 3px;margin:1px;border-radius:3px">{text}</span>'
        )
    return '<div class="tokens">' + "".join(spans) + "</div>"


def eviction_view(run: Run, name: str) -> None:
    """Curves first, then the token view with a method picker, then the heatmaps."""
    figs = run.figures
    if "accuracy_vs_rate" in figs:
        st.subheader("Accuracy against eviction rate")
        st.plotly_chart(figs["accuracy_vs_rate"], width="stretch", key=f"{name}-curves")
    tokens = run.tables.get("tokens")
    if tokens is not None and len(tokens):
        st.subheader("Kept and evicted tokens (first prompt, middle rate)")
        methods = sorted(tokens.method.unique())
        method = st.selectbox("method", methods, key="evict_method")
        setting = tokens.setting.iloc[0]
        rows = tokens[(tokens.method == method) & (tokens.setting == setting)]
        st.caption(
            f"{setting}: green kept, red evicted (mixed by the share of heads keeping "
            "the token); blue: the final rows"
        )
        st.markdown(kept_tokens_html(rows), unsafe_allow_html=True)
    heads = [f for f in figs if f.startswith("heads_")]
    if heads:
        st.subheader("Eviction per layer and head")
        pick = st.selectbox("heatmap", heads, key="evict_heatmap")
        st.plotly_chart(figs[pick], width="stretch", key=f"{name}-{pick}")
    if "tokens_kept" in figs:
        st.plotly_chart(figs["tokens_kept"], width="stretch", key=f"{name}-tokens")
