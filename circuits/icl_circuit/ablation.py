"""The attention-edge ablation table: every edge, range and control in one plan."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from circuits.icl_circuit.scores import EDGE_NAMES, LAYER_RANGES, EdgeGroup, layer_range
from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, Knockout, PlanRow
from interp.models import HookedModel
from interp.prompts import Annotation, PromptBatch

# ---------------------------------------------------------------------------------------------
# The ablation table: one plan, one engine run


@dataclass
class EdgeAblation:
    """Attention-edge knockouts of each circuit step, in each range of layers.

    A row forbids, in every layer of its range, the edges of one kind (see :meth:`edge_groups`);
    ``random`` knocks out as many random causal edges per layer as the largest circuit row of
    that prompt (never the first token, so no query is left with nothing to attend to). Rows
    ``none`` and ``k=0`` (0-shot prompts) give the baselines. Metric: accuracy of the argmax
    over the prompt's candidate labels at ``s_q``.
    """

    ranges: tuple[tuple[float, float], ...] = LAYER_RANGES
    seed: int = 0
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

    def random_groups(self, ann: Annotation, count: int, prompt: int, layer: int) -> list:
        """``count`` distinct causal edges ``(q, k)``, ``1 <= k <= q``, seeded per prompt and layer
        so every range knocks out the same edges in a shared layer."""
        rng = random.Random(f"{self.seed}:{prompt}:{layer}")
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
                knocks = tuple(
                    Knockout(lay, q, k)
                    for lay in layers
                    for q, k in self.random_groups(ann, largest, prompt, lay)
                )
                rows.append(PlanRow(prompt, knocks, (("edge", "random"), *label)))
        rows += [PlanRow(p, (), (("edge", "k=0"), ("range", "all"))) for p in zero_shot]
        return InterventionPlan(rows, base="clean")

    def batch_plan(self, batch: PromptBatch, n_shot: int, n_layers: int) -> InterventionPlan:
        """The plan of :meth:`measure` (``batch``: ``n_shot`` k-shot prompts, then 0-shot)."""
        return self.plan(batch.annotations[:n_shot], n_layers, range(n_shot, len(batch)))

    def measure(self, model: HookedModel, batch: PromptBatch, n_shot: int) -> pd.DataFrame:
        """Accuracy per edge and range: ``batch`` holds ``n_shot`` k-shot prompts, then 0-shot."""
        plan = self.batch_plan(batch, n_shot, model.cfg.n_layers)
        table = Engine(model, max_batch=self.max_batch).run(
            plan, batch, metric="acc", progress=False
        )
        acc = table.groupby(["edge", "range"], sort=False).metric.mean()
        rows = []
        for start, end in self.ranges:
            layers = layer_range(model.cfg.n_layers, start, end)
            name = f"{start:g}-{end:g}"
            for edge in (*EDGE_NAMES, "random", "none", "k=0"):
                value = acc.get((edge, name), acc.get((edge, "all"), float("nan")))
                rows.append(
                    {
                        "edge": edge,
                        "range": name,
                        "start": start,
                        "end": end,
                        "first_layer": layers[0],
                        "last_layer": layers[-1],
                        "acc": float(value),
                    }
                )
        out = pd.DataFrame(rows)
        out["drop"] = float(acc[("none", "all")]) - out.acc
        return out
