"""The explorer's view of a ``task-vectors`` run: the accuracy table with its intervals, the AIE
and alpha heatmaps (plotly: hover gives layer, head and value), and a head picker that shows
one head's AIE and alpha per task.

With ``alpha_stability`` (runs with extra soft-injection fits at other learning rates and
seeds), a table of every fit and each alpha's stable heads (above 0.9 in every fit).

The accuracy table ends with each method's mean over tasks and its interval; the top heads
come with their AIE and its bootstrap interval; a run with several prompt seeds (``--seeds``)
adds a table of every headline number per seed with its spread.

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


def mean_row(summary: dict, methods: list[str]) -> pd.DataFrame:
    """Each method's mean over tasks with its interval, as one ``mean`` row."""
    cells = {
        m: f"{summary[m]:.3f} [{summary[f'{m}_ci'][0]:.2f}, {summary[f'{m}_ci'][1]:.2f}]"
        for m in methods
        if m in summary and f"{m}_ci" in summary
    }
    return pd.DataFrame([cells], index=pd.Index(["mean"], name="task"))


def top_heads_table(summary: dict) -> pd.DataFrame:
    """The top heads by mean AIE, best first, with the AIE's 95% bootstrap interval."""
    heads, values = summary.get("top_heads", []), summary.get("top_heads_aie", [])
    cis = summary.get("top_heads_aie_ci") or [[None, None]] * len(values)
    rows = [
        {"head": f"L{h[0]}H{h[1]}", "AIE": v, "low": ci[0], "high": ci[1]}
        for h, v, ci in zip(heads, values, cis)
    ]
    return pd.DataFrame(rows, columns=["head", "AIE", "low", "high"]).set_index("head")


def seeds_table(summary: dict) -> pd.DataFrame | None:
    """Per headline number, its value under each prompt seed and their mean, sd and range
    (None for a run with one seed)."""
    seeds = summary.get("seeds") or []
    if len(seeds) < 2:
        return None
    rows = []
    for key, by in summary.items():
        if not key.endswith("_by_seed") or "values" not in by:
            continue
        row = {"number": key.removesuffix("_by_seed")}
        row |= {f"seed {s}": v for s, v in zip(seeds, by["values"])}
        row |= {k: by[k] for k in ("mean", "std", "min", "max")}
        rows.append(row)
    return pd.DataFrame(rows).set_index("number")


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
        table = accuracy_table(acc)
        mean = mean_row(run.summary, list(table.columns))
        if len(mean.columns):  # runs written before the means had intervals have none
            table = pd.concat([table, mean])
        st.dataframe(table, key=f"{name}-acc")
        seeds = seeds_table(run.summary)
        if seeds is not None:
            st.subheader("Across prompt seeds")
            st.caption(
                "The run again with the prompts drawn by each seed; the numbers above are the "
                "first seed's."
            )
            st.dataframe(seeds, key=f"{name}-seeds")
    if aie is not None:
        st.subheader("Average indirect effect per head")
        tasks = ["mean", *[t for t in aie.task.unique() if t != "mean"]]
        task = st.selectbox("AIE of", tasks, key="tv_aie_task")
        fig = layer_head_heatmap(
            aie[aie.task == task], "aie", title="", color="AIE", scale="RdBu_r", midpoint=0.0
        )
        st.plotly_chart(fig, width="stretch", key=f"{name}-aie-{task}")
        heads = top_heads_table(run.summary)
        if len(heads):
            st.caption("Top heads by mean AIE, with 95% bootstrap intervals over prompts")
            st.dataframe(heads, key=f"{name}-top-heads")
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
