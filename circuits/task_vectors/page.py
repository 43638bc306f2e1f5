"""The explorer's view of a ``task-vectors`` run: the accuracy table with its intervals, the AIE
and alpha heatmaps (plotly: hover gives layer, head and value), and a head picker that shows
one head's AIE and alpha per task.

With ``alpha_stability`` (runs with extra soft-injection fits at other learning rates and
seeds), a table of every fit and each alpha's stable heads (above 0.9 in every fit).

Reads only the run's tables (``accuracy``, ``aie``, ``alpha``, ``alpha_stability``) and
``summary.json``; nothing is recomputed.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from interp.runs.figures import layer_head_heatmap
from interp.runs.store import Run


def accuracy_table(acc: pd.DataFrame) -> pd.DataFrame:
    """One row per task, one column per method: ``acc [lo, hi]`` (and the layer, if any)."""

    def cell(r) -> str:
        at = f" L{int(r.layer)}" if pd.notna(r.layer) else ""
        return f"{r.acc:.2f} [{r.lo:.2f}, {r.hi:.2f}]{at}"

    cells = acc.assign(cell=[cell(r) for r in acc.itertuples()])
    return cells.pivot(index="task", columns="method", values="cell")


def head_effects(aie: pd.DataFrame, alpha: pd.DataFrame, layer: int, head: int) -> pd.DataFrame:
    """One head's AIE and learned alpha per task."""
    a = aie[(aie.layer == layer) & (aie["head"] == head)][["task", "aie"]]
    b = alpha[(alpha.layer == layer) & (alpha["head"] == head)][["task", "alpha"]]
    return a.merge(b, on="task", how="outer").set_index("task")


def stable_table(summary: dict) -> pd.DataFrame:
    """Per alpha, its stable heads (``L{layer}H{head}``) and the fits' agreement."""
    heads, agree = summary.get("alpha_stable_heads", {}), summary.get("alpha_fit_agreement", {})
    rows = [
        {
            "alpha": t,
            "stable heads": len(h),
            "agreement": agree.get(t),
            "heads": ", ".join(f"L{layer}H{head}" for layer, head in h),
        }
        for t, h in heads.items()
        if h is not None
    ]
    return pd.DataFrame(rows, columns=["alpha", "stable heads", "agreement", "heads"]).set_index(
        "alpha"
    )


def task_vectors_view(run: Run, name: str) -> None:
    acc, aie, alpha = (run.tables.get(t) for t in ("accuracy", "aie", "alpha"))
    if acc is not None:
        st.subheader("Held-out accuracy, 0-shot (ICL: k-shot), 95% intervals")
        st.dataframe(accuracy_table(acc), key=f"{name}-acc")
    if aie is not None:
        st.subheader("Average indirect effect per head")
        tasks = ["mean", *[t for t in aie.task.unique() if t != "mean"]]
        task = st.selectbox("AIE of", tasks, key="tv_aie_task")
        fig = layer_head_heatmap(
            aie[aie.task == task], "aie", title="", color="AIE", scale="RdBu_r", midpoint=0.0
        )
        st.plotly_chart(fig, width="stretch", key=f"{name}-aie-{task}")
    if alpha is not None and len(alpha):
        st.subheader("Soft injection: learned alpha")
        which = st.selectbox("alpha of", list(alpha.task.unique()), key="tv_alpha_task")
        fig = layer_head_heatmap(alpha[alpha.task == which], "alpha", title="", zmin=0, zmax=1)
        st.plotly_chart(fig, width="stretch", key=f"{name}-alpha-{which}")
    stability = run.tables.get("alpha_stability")
    if stability is not None and stability.groupby("task").size().max() > 1:
        st.subheader("Soft injection across learning rates and seeds")
        st.caption(
            "One row per alpha and fit (main: the alpha above). Stable heads are above 0.9 in "
            "every fit; agreement is the mean pairwise Jaccard index of the fits' > 0.9 sets."
        )
        st.dataframe(stability, key=f"{name}-stability", hide_index=True)
        st.dataframe(stable_table(run.summary), key=f"{name}-stable")
    if aie is not None and alpha is not None:
        st.subheader("One head across tasks")
        n_layers, n_heads = int(aie.layer.max()) + 1, int(aie["head"].max()) + 1
        c1, c2 = st.columns(2)
        layer = c1.number_input("layer", 0, n_layers - 1, 0, key="tv_layer")
        head = c2.number_input("head", 0, n_heads - 1, 0, key="tv_head")
        st.dataframe(head_effects(aie, alpha, int(layer), int(head)), key=f"{name}-head")
