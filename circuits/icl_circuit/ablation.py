"""The attention-edge ablation table: every edge, range and control in one plan, with intervals
over prompts and a distribution of random-edge controls."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from circuits.icl_circuit.scores import EDGE_NAMES, LAYER_RANGES, EdgeGroup, layer_range
from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, Knockout, PlanRow
from interp.models import HookedModel
from interp.prompts import Annotation, PromptBatch
from interp.stats import beats_control, bootstrap_ci

# ---------------------------------------------------------------------------------------------
# The ablation table: one plan, one engine run


@dataclass
class EdgeAblation:
    """Attention-edge knockouts of each circuit step, in each range of layers.

    A row forbids, in every layer of its range, the edges of one kind (see :meth:`edge_groups`);
    ``random`` knocks out as many random causal edges per layer as the largest circuit row of
    that prompt (never the first token, so no query is left with nothing to attend to), in
    ``random_draws`` [10] independently seeded sets: one draw could be lucky or unlucky, ten
    give the spread a circuit edge must beat. Rows ``none`` and ``k=0`` (0-shot prompts) give
    the baselines. Metric: accuracy of the argmax over the prompt's candidate labels at ``s_q``.
    """

    ranges: tuple[tuple[float, float], ...] = LAYER_RANGES
    seed: int = 0
    random_draws: int = 10
    """Random edge sets of the control, each the size of the largest circuit row."""
    max_batch: int | None = None
    """Rows per forward pass of the engine [sized to its memory budget]."""

    @staticmethod
    def edge_groups(ann: Annotation) -> dict[str, list[EdgeGroup]]:
        """The edges each circuit row removes, per prompt (positions differ between prompts)."""
        x_q = tuple(range(*ann.x_q)) + (ann.s_q,)
        return {
            "xi_to_si": [((s,), tuple(range(a, b))) for s, (a, b) in zip(ann.s, ann.x)],
            "xq_to_sq": [((ann.s_q,), x_q)],
            "si_to_yi": [((y,), (s,)) for s, y in zip(ann.s, ann.y)],
            "yi_to_sq": [((ann.s_q,), tuple(ann.y))],
            "si_to_si": [((s,), tuple(ann.s[: i + 1])) for i, s in enumerate(ann.s)],
        }

    def random_groups(
        self, ann: Annotation, count: int, prompt: int, layer: int, draw: int = 0
    ) -> list:
        """``count`` distinct causal edges ``(q, k)``, ``1 <= k <= q``, seeded per draw, prompt
        and layer so every range of one draw knocks out the same edges in a shared layer."""
        rng = random.Random(f"{self.seed}:{draw}:{prompt}:{layer}")
        total = ann.length * (ann.length - 1) // 2
        # edge i in the order (1,1), (2,1), (2,2), (3,1), ...: query q starts at q(q-1)/2
        picks = rng.sample(range(total), min(count, total))
        edges = []
        for i in picks:
            q = (math.isqrt(8 * i + 1) - 1) // 2 + 1
            edges.append(((q,), (i - q * (q - 1) // 2 + 1,)))
        return edges

    def plan(
        self, annotations: Sequence[Annotation], n_layers: int, zero_shot: Sequence[int] = ()
    ) -> InterventionPlan:
        """Every row of every range for ``annotations``' prompts, plus ``k=0`` rows."""
        rows = []
        for prompt, ann in enumerate(annotations):
            groups = self.edge_groups(ann)
            largest = max(sum(len(q) * len(k) for q, k in g) for g in groups.values())
            rows.append(PlanRow(prompt, (), (("edge", "none"), ("range", "all"))))
            for start, end in self.ranges:
                layers = layer_range(n_layers, start, end)
                label = (("range", f"{start:g}-{end:g}"),)
                for name, group in groups.items():
                    knocks = tuple(Knockout(lay, q, k) for lay in layers for q, k in group)
                    rows.append(PlanRow(prompt, knocks, (("edge", name), *label)))
                for draw in range(self.random_draws):
                    knocks = tuple(
                        Knockout(lay, q, k)
                        for lay in layers
                        for q, k in self.random_groups(ann, largest, prompt, lay, draw)
                    )
                    rows.append(
                        PlanRow(prompt, knocks, (("edge", "random"), ("draw", draw), *label))
                    )
        rows += [PlanRow(p, (), (("edge", "k=0"), ("range", "all"))) for p in zero_shot]
        return InterventionPlan(rows, base="clean")

    def batch_plan(self, batch: PromptBatch, n_shot: int, n_layers: int) -> InterventionPlan:
        """The plan of :meth:`measure` (``batch``: ``n_shot`` k-shot prompts, then 0-shot)."""
        return self.plan(batch.annotations[:n_shot], n_layers, range(n_shot, len(batch)))

    def measure(
        self, model: HookedModel, batch: PromptBatch, n_shot: int
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Accuracy per edge and range, and each prompt's score per row: ``batch`` holds
        ``n_shot`` k-shot prompts, then 0-shot (see :meth:`tables`)."""
        plan = self.batch_plan(batch, n_shot, model.cfg.n_layers)
        table = Engine(model, max_batch=self.max_batch).run(
            plan, batch, metric="acc", progress=False
        )
        return self.tables(table, model.cfg.n_layers)

    def tables(self, table: pd.DataFrame, n_layers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """From the engine's table (one row per plan row: ``edge``, ``range``, ``draw``,
        ``prompt``, ``metric``): the ablation table (``acc`` and ``drop`` per edge and range,
        the random row averaged over draws; ``drop_low``/``drop_high``, a bootstrap interval
        over prompts of the paired drop, none for ``k=0`` whose prompts are others) and the
        per-prompt table ``edge, range, draw, prompt, acc`` (``draw`` -1 outside the random
        control) that the summary's intervals read."""
        by_prompt = table.rename(columns={"metric": "acc"})
        if "draw" not in by_prompt:
            by_prompt["draw"] = -1
        by_prompt["draw"] = by_prompt["draw"].fillna(-1).astype(int)
        by_prompt = by_prompt[["edge", "range", "draw", "prompt", "acc"]].reset_index(drop=True)
        acc = by_prompt.groupby(["edge", "range"], sort=False).acc.mean()
        rows = []
        for start, end in self.ranges:
            layers = layer_range(n_layers, start, end)
            name = f"{start:g}-{end:g}"
            for edge in (*EDGE_NAMES, "random", "none", "k=0"):
                value = acc.get((edge, name), acc.get((edge, "all"), float("nan")))
                if edge == "none":
                    low = high = 0.0
                elif edge == "k=0":  # other prompts than the k-shot ones: no paired drop
                    low = high = float("nan")
                else:
                    low, high = drop_ci(drop_matrix(by_prompt, edge, (name,))[:, 0])
                rows.append(
                    {
                        "edge": edge,
                        "range": name,
                        "start": start,
                        "end": end,
                        "first_layer": layers[0],
                        "last_layer": layers[-1],
                        "acc": float(value),
                        "drop_low": low,
                        "drop_high": high,
                    }
                )
        out = pd.DataFrame(rows)
        out.insert(out.columns.get_loc("drop_low"), "drop", float(acc[("none", "all")]) - out.acc)
        return out, by_prompt


def drop_matrix(
    by_prompt: pd.DataFrame, edge: str, ranges: Sequence[str], draw: int | None = None
) -> np.ndarray:
    """``(prompts, ranges)`` paired drops ``acc(none) - acc(edge)`` per prompt; for ``random``
    one ``draw``, or (``None``) each prompt's mean over the draws."""
    none = by_prompt.query("edge == 'none'").set_index("prompt").acc.sort_index()
    rows = by_prompt[(by_prompt.edge == edge) & by_prompt["range"].isin(ranges)]
    if draw is not None:
        rows = rows[rows.draw == draw]
    acc = rows.groupby(["prompt", "range"]).acc.mean().unstack("range")
    acc = acc.reindex(index=none.index, columns=list(ranges))
    return none.to_numpy()[:, None] - acc.to_numpy()


def drop_ci(drops: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval over prompts of a drop: of the mean for a ``(prompts,)`` vector, of
    the largest range mean for a ``(prompts, ranges)`` matrix (so the choice of range is part
    of every resample, not a free pick after the fact)."""
    if drops.ndim == 1:
        return bootstrap_ci(drops, level=level)
    return bootstrap_ci(drops, statistic=lambda m: float(m.mean(0).max()), level=level)


def random_control(by_prompt: pd.DataFrame, ranges: Sequence[str], q: float = 0.95) -> dict:
    """Each circuit edge's largest drop over ``ranges`` with its bootstrap interval, against the
    random control: ``random_drops``, the largest drop of each random draw; their ``q``
    quantile; and ``above_random``, the edges (largest drop first) whose interval's lower bound
    is above it. Intervals are ``[low, high]`` lists rounded to 4 places."""
    ranges = list(ranges)
    edges = [e for e in EDGE_NAMES if (by_prompt.edge == e).any()]
    matrices = {e: drop_matrix(by_prompt, e, ranges) for e in edges}
    cis = {e: drop_ci(m) for e, m in matrices.items()}
    draws = sorted(d for d in set(by_prompt.draw) if d >= 0)
    randoms = [float(drop_matrix(by_prompt, "random", ranges, d).mean(0).max()) for d in draws]
    ranked = sorted(edges, key=lambda e: -float(matrices[e].mean(0).max()))
    above = [e for e in ranked if randoms and beats_control(cis[e][0], randoms, q)]
    return {
        "ablation_drop_ci": {e: _rounded(cis[e]) for e in edges},
        "random_drop_ci": _rounded(drop_ci(drop_matrix(by_prompt, "random", ranges))),
        "random_drops": randoms,
        "random_drop_p95": float(np.quantile(randoms, q)) if randoms else float("nan"),
        "above_random": above,
    }


def _rounded(ci: tuple[float, float]) -> list[float]:
    return [round(float(v), 4) for v in ci]
