"""Every head's role scores, read off the tables of the atlas's part runs.

One function per part turns that run's tables into columns of the ``heads`` table
(:mod:`circuits.atlas.schema`), so what each score means is said once, next to where it is
read. A part that was not run leaves its columns NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from circuits.atlas.schema import SCORES
from interp.runs.store import Run

KEY = ["layer", "head"]
EDGES = ("xi_to_si", "xq_to_sq", "si_to_yi", "yi_to_sq", "si_to_si")
"""The circuit's attention edges (its controls ``random``, ``none`` and ``k=0`` are not)."""


def head_grid(n_layers: int, n_heads: int) -> pd.DataFrame:
    """One row per head with its relative depth, every score column NaN."""
    layers, heads = np.meshgrid(range(n_layers), range(n_heads), indexing="ij")
    grid = pd.DataFrame({"layer": layers.ravel(), "head": heads.ravel()})
    grid["depth"] = grid.layer / max(n_layers - 1, 1)
    for score in SCORES:
        grid[score] = np.nan
        grid[f"{score}_low"] = np.nan
        grid[f"{score}_high"] = np.nan
    return grid


def circuit_scores(run: Run, n_layers: int) -> pd.DataFrame:
    """Forerunner attention (step 2), retrieval correctness and label-assignment accuracy
    (step 3) per head, and the largest drop of an attention edge's knockout in the head's layer
    band, with that drop's interval."""
    t = run.tables
    out = t["step2_heads"][[*KEY, "attention"]].rename(columns={"attention": "forerunner"})
    step3 = t["step3_heads"][[*KEY, "correctness", "label_acc"]]
    step3 = step3.rename(columns={"correctness": "retrieval", "label_acc": "label_assignment"})
    out = out.merge(step3, on=KEY, how="outer")
    ablation = t.get("ablation")
    if ablation is not None and len(ablation):
        out = out.merge(band_drops(ablation, n_layers), on="layer", how="left")
    return out


def band_drops(ablation: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """Per layer: the largest knockout drop among the edges of the band holding it, with its
    interval. Bands name their first and last layer, both inclusive; a layer two bands share
    goes to the later band."""
    bands = ablation[ablation.edge.isin(EDGES) & (ablation.range != "0-1")]
    rows = []
    for layer in range(n_layers):
        inside = bands[(bands.first_layer <= layer) & (layer <= bands.last_layer)]
        if not len(inside):
            continue
        inside = inside[inside.first_layer == inside.first_layer.max()]
        top = inside.loc[inside["drop"].idxmax()]
        rows.append(
            dict(
                layer=layer,
                band_drop=float(top["drop"]),
                band_drop_low=float(top["drop_low"]),
                band_drop_high=float(top["drop_high"]),
            )
        )
    return pd.DataFrame(rows, columns=["layer", "band_drop", "band_drop_low", "band_drop_high"])


def task_vector_scores(run: Run) -> pd.DataFrame:
    """The mean-over-tasks AIE (with the intervals the run gives its top heads) and the mean
    soft-injection alpha over tasks, per head."""
    aie = run.tables["aie"]
    mean = aie[aie.task == "mean"] if (aie.task == "mean").any() else aie
    out = mean.groupby(KEY, as_index=False).aie.mean()
    alpha = run.tables.get("alpha")
    if alpha is not None and len(alpha):
        out = out.merge(alpha.groupby(KEY, as_index=False).alpha.mean(), on=KEY, how="outer")
    heads = run.summary.get("top_heads") or []
    cis = run.summary.get("top_heads_aie_ci") or []
    ci = pd.DataFrame(
        [dict(layer=h[0], head=h[1], aie_low=c[0], aie_high=c[1]) for h, c in zip(heads, cis)],
        columns=[*KEY, "aie_low", "aie_high"],
    )
    return out.merge(ci, on=KEY, how="left")


def relevance_scores(run: Run) -> pd.DataFrame:
    """Calibrated precision@1 per head on held-out prompts (unseen documents where the run
    split them), with its interval."""
    heads = run.tables["heads"]
    calibrated = heads[heads.variant == "calibrated"]
    for split in ("unseen", "test", "seen", "select"):
        d = calibrated[calibrated.split == split]
        if len(d):
            break
    d = d[[*KEY, "p_at_1", "p_at_1_low", "p_at_1_high"]]
    return d.rename(
        columns={
            "p_at_1": "relevance",
            "p_at_1_low": "relevance_low",
            "p_at_1_high": "relevance_high",
        }
    )


def eviction_scores(run: Run) -> pd.DataFrame:
    """Per head: the share of its attention that SnapKV keeps at the run's middle rate (SnapKV
    keeps the same number of keys in every head, so the keys' share would say nothing), and the
    share of its keys the gate keeps at its own threshold (where the gate decides how many each
    head keeps), averaged over the run's settings."""
    by_head = run.tables["by_head"]
    rates = sorted(by_head.rate.dropna().unique())
    mid = rates[len(rates) // 2] if rates else None
    out = pd.DataFrame(columns=KEY)
    snap = by_head[(by_head.method == "snapkv") & (by_head.rate == mid)]
    if len(snap):
        kept = snap.groupby(KEY, as_index=False).attention_lost.mean()
        kept["snapkv_kept"] = 1.0 - kept.pop("attention_lost")
        out = kept
    gate = by_head[(by_head.method == "gate") & by_head.rate.isna()]
    if len(gate):
        kept = gate.groupby(KEY, as_index=False).evicted.mean()
        kept["gate_kept"] = 1.0 - kept.pop("evicted")
        out = kept if not len(out) else out.merge(kept, on=KEY, how="outer")
    return out


READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "circuit": circuit_scores,
    "task-vectors": task_vector_scores,
    "eviction": eviction_scores,
    "block-relevance": relevance_scores,
}


def head_scores(runs: dict[str, Run], n_layers: int, n_heads: int) -> pd.DataFrame:
    """The ``heads`` table from the part runs by kind."""
    grid = head_grid(n_layers, n_heads).set_index(KEY)
    for kind, run in runs.items():
        read = READERS[kind]
        part = read(run, n_layers) if kind == "circuit" else read(run)
        if "layer" in part and "head" not in part:  # a per-layer score: every head of the layer
            part = part.merge(grid.reset_index()[KEY], on="layer")
        part = part.set_index(KEY)
        part = part[part.index.isin(grid.index)]  # rows of a whole layer (head -1) are no head
        for column in part.columns:
            grid.loc[part.index, column] = part[column].astype(float)
    return grid.reset_index()
