"""The explorer's view of a ``task-vectors`` run: the accuracy table with its intervals, the AIE
and alpha heatmaps (plotly: hover gives layer, head and value), and a head picker that shows
one head's AIE and alpha per task.

Reads only the run's tables (``accuracy``, ``aie``, ``alpha``); nothing is recomputed.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

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


def task_vectors_view(run: Run, name: str) -> None:
    acc, aie, alpha = (run.tables.get(t) for t in ("accuracy", "aie", "alpha"))
    if acc is not None:
        st.subheader("Held-out accuracy, 0-shot (ICL: k-shot), 95% intervals")
        st.dataframe(accuracy_table(acc), key=f"{name}-acc")
    if aie is not None:
        st.subheader("Average indirect effect per head")
        tasks = ["mean", *[t for t in aie.task.unique() if t != "mean"]]
        task = st.selectbox("AIE of", tasks, key="tv_aie_task")
        grid = aie[aie.task == task].pivot(index="layer", columns="head", values="aie")
        fig = px.imshow(
            grid,
            origin="lower",
            aspect="auto",
            color_continuous_scale="RdBu_r",
            color_continuous_midpoint=0.0,
            labels={"color": "AIE"},
        )
        st.plotly_chart(fig, width="stretch", key=f"{name}-aie-{task}")
    if alpha is not None and len(alpha):
        st.subheader("Soft injection: learned alpha")
        which = st.selectbox("alpha of", list(alpha.task.unique()), key="tv_alpha_task")
        grid = alpha[alpha.task == which].pivot(index="layer", columns="head", values="alpha")
        fig = px.imshow(
            grid,
            origin="lower",
            aspect="auto",
            zmin=0,
            zmax=1,
            color_continuous_scale="Viridis",
            labels={"color": "alpha"},
        )
        st.plotly_chart(fig, width="stretch", key=f"{name}-alpha-{which}")
    if aie is not None and alpha is not None:
        st.subheader("One head across tasks")
        n_layers, n_heads = int(aie.layer.max()) + 1, int(aie["head"].max()) + 1
        c1, c2 = st.columns(2)
        layer = c1.number_input("layer", 0, n_layers - 1, 0, key="tv_layer")
        head = c2.number_input("head", 0, n_heads - 1, 0, key="tv_head")
        st.dataframe(head_effects(aie, alpha, int(layer), int(head)), key=f"{name}-head")
