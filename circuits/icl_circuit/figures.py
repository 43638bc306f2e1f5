"""The ICL circuit's figures: one plotly figure per view, written from the result's tables."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go

from circuits.icl_circuit import EDGE_NAMES, IclCircuitResult
from interp.runs.figures import heatmap, layer_head_heatmap
from interp.runs.reports import integer_axes
from interp.stats import wilson_ci


def circuit_figures(result: IclCircuitResult) -> dict[str, go.Figure]:
    """One plotly figure per view of the circuit."""
    figs: dict[str, go.Figure] = {}
    s1 = result.step1.assign(view=result.step1.measure + " @ " + result.step1.position)
    s1[["above", "below"]] = _centroid_error_bars(result)
    figs["step1_by_layer"] = px.line(
        s1,
        x="depth",
        y="value",
        color="view",
        markers=True,
        error_y="above",
        error_y_minus="below",
        title="Step 1, summarize: query class read from each depth (0 = embeddings)",
        labels={"value": "accuracy / alignment"},
        hover_data={"above": False, "below": False},
    )
    s2 = result.step2_layers
    fig = go.Figure(
        [
            go.Bar(x=s2.layer, y=s2.forerunner_heads, name="forerunner-token heads"),
            go.Scatter(
                x=s2.layer,
                y=s2.copy_magnitude,
                name="copy magnitude",
                yaxis="y2",
                mode="lines+markers",
            ),
        ]
    )
    fig.update_layout(
        title="Step 2, semantics merge: heads where y attends to its forerunner",
        xaxis_title="layer",
        yaxis_title="heads",
        barmode="group",
        yaxis2={"title": "mean max_h A[y_q, s_q]", "overlaying": "y", "side": "right"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},  # clear of y2
    )
    figs["step2_heads"] = fig
    figs["step2_label_states"] = px.line(
        result.step2_labels,
        x="depth",
        y="centroid",
        color="labels",
        markers=True,
        title="Step 2: input class from label-token states, correct vs wrong labels",
    )
    figs["step3_retrieval_heads"] = layer_head_heatmap(
        result.step3_heads,
        "label_acc",
        title="Step 3: label assignment accuracy per head",
        color="label acc",
        zmin=0,
        zmax=1,
    )
    sub = result.subspace
    figs["step3_subspace"] = px.scatter(
        sub,
        x="pc1",
        y="pc2",
        color="class",
        hover_data=["label_word", "prompt", "demo"],
        title=f"Retrieval subspace of head L{sub.layer.iloc[0]}H{sub['head'].iloc[0]}: "
        "W_Qᵀ W_K label states, PCA",
    )
    abl = result.ablation.pivot(index="edge", columns="range", values="acc")
    abl = abl.reindex([*EDGE_NAMES, "random", "none", "k=0"])
    figs["ablation"] = heatmap(
        abl,
        title="Accuracy with attention edges knocked out",
        color="accuracy",
        scale="RdBu",
        zmin=0,
        zmax=1,
        origin=None,
        text=".2f",
    )
    figs["ablation_random_control"] = random_control_figure(result.summary())
    return {name: integer_axes(fig) for name, fig in figs.items()}


def _centroid_error_bars(result: IclCircuitResult) -> list[tuple[float, float]]:
    """Per step-1 row, the distance from its value up and down to its 95% Wilson interval: the
    centroid accuracies are plain accuracies on the held-out half of the prompts; the other
    measures get no bar (NaN)."""
    n = result.prompts or int(result.subspace.prompt.nunique())
    n_test = n - n // 2
    bars = []
    for measure, value in zip(result.step1.measure, result.step1.value):
        if measure != "centroid" or n_test == 0:
            bars.append((float("nan"), float("nan")))
            continue
        low, high = wilson_ci(int(round(float(value) * n_test)), n_test)
        bars.append((high - value, value - low))
    return bars


def random_control_figure(summary: dict) -> go.Figure:
    """Each circuit edge's largest drop with its 95% interval, beside the drops of the random
    edge sets (one point per draw) and their 95th percentile, the bar an edge's lower bound must
    clear."""
    edges = sorted(summary["ablation_drop"], key=lambda e: -summary["ablation_drop"][e])
    drops = [summary["ablation_drop"][e] for e in edges]
    cis = [summary["ablation_drop_ci"][e] for e in edges]
    randoms = summary["random_drops"]
    fig = go.Figure(
        [
            go.Scatter(
                x=edges,
                y=drops,
                mode="markers",
                name="circuit edge (95% interval)",
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [hi - d for d, (_, hi) in zip(drops, cis)],
                    "arrayminus": [d - lo for d, (lo, _) in zip(drops, cis)],
                },
            ),
            go.Box(
                x=["random"] * len(randoms),
                y=randoms,
                name=f"random edge sets ({len(randoms)} draws)",
                boxpoints="all",
            ),
        ]
    )
    fig.add_hline(
        y=summary["random_drop_p95"],
        line_dash="dash",
        annotation_text="95th percentile of random",
    )
    fig.update_layout(
        title="Largest accuracy drop per knocked-out edge against random edge sets",
        xaxis_title="edge",
        yaxis_title="accuracy drop",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return fig
