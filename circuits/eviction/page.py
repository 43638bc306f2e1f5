"""The explorer's view of an ``eviction`` run: accuracy curves, heatmaps per layer and head, and
the first prompt's tokens coloured by how many (layer, head) pairs keep them.

Reads only the run's tables and figures (``curves``, ``by_head``, ``tokens``); nothing is
recomputed, so the page opens as fast as the run directory loads.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from interp.runs.reports import integer_axes  # older runs were saved without
from interp.runs.store import Run
from interp.tokens import shown_token

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
    """One prompt's tokens as spans coloured by :func:`token_colour`, the share in the title.
    A token never breaks across lines (each span is one unbreakable box; lines break between
    tokens) and its leading space shows as ``␣``."""
    spans = []
    for r in rows.sort_values("pos").itertuples():
        text = html.escape(shown_token(r.token))
        title = f"kept by {r.kept:.2f} of heads" if r.context else "final row"
        colour = token_colour(r.kept, r.context)
        spans.append(
            f'<span class="tok" title="{title}" style="background:{colour};'
            "display:inline-block;white-space:pre;padding:1px 3px;margin:1px;"
            f'border-radius:3px">{text}</span>'
        )
    style = "line-height:1.9;max-width:100%;overflow-wrap:normal;word-break:normal"
    return f'<div class="tokens" style="{style}">' + "".join(spans) + "</div>"


def compact_summary(summary: dict) -> pd.DataFrame:
    """The summary's accuracies as one small table, a row per method and a column per eviction
    rate (in place of the flattened per-setting numbers)."""
    by_method = summary.get("by_method") or {}
    rates = sorted({float(r) for v in by_method.values() for r in v})
    rows = {m: {f"evict {r:g}": v.get(str(r)) for r in rates} for m, v in by_method.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[f"evict {r:g}" for r in rates])
    return table.rename_axis("method")


def summary_line(summary: dict) -> str:
    """Every key kept and the gate at its own threshold, in one line."""
    parts = []
    if summary.get("accuracy_full") is not None:
        parts.append(f"every key kept: {summary['accuracy_full']:.3f}")
    if summary.get("gate_accuracy") is not None:
        parts.append(
            f"gate at its own threshold: {summary['gate_accuracy']:.3f}, evicting "
            f"{summary['gate_rate']:.2f} of the context"
        )
    if summary.get("gate_joint_accuracy") is not None:
        parts.append(
            f"gate trained with LoRA: {summary['gate_joint_accuracy']:.3f}, evicting "
            f"{summary['gate_joint_rate']:.2f} (adapted model, every key: "
            f"{summary['accuracy_full_adapted']:.3f})"
        )
    return "; ".join(parts)


def eviction_view(run: Run, name: str) -> None:
    """A compact summary, the curves, then the token view with a method picker, then the
    heatmaps, all full width."""
    figs = run.figures
    if run.summary.get("by_method"):
        st.subheader("Accuracy by method and eviction rate")
        st.caption(summary_line(run.summary))
        st.table(compact_summary(run.summary).map(lambda v: "-" if v != v else f"{v:.3f}"))
    if "accuracy_vs_rate" in figs:
        st.subheader("Accuracy against eviction rate")
        st.plotly_chart(
            integer_axes(figs["accuracy_vs_rate"]), width="stretch", key=f"{name}-curves"
        )
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
        st.plotly_chart(integer_axes(figs[pick]), width="stretch", key=f"{name}-{pick}")
    if "tokens_kept" in figs:
        st.plotly_chart(figs["tokens_kept"], width="stretch", key=f"{name}-tokens")
