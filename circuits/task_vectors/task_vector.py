"""Task vectors (Hendel et al., 2023): the residual state a k-shot prompt leaves at its last
token, written over the last-token state of a 0-shot prompt at one layer.

    theta_L = mean over k-shot prompts of h[L, last]      (``hook_resid_post`` of layer L)
    0-shot prompt: h[L, last] := theta_L

The replacement is a :class:`~interp.engine.plan.Patch` (``alpha = 1``, ``source='tensor'``),
so the whole layer sweep is one :class:`~interp.engine.plan.InterventionPlan` of
``(layer, prompt)`` rows that the engine batches. The layer is chosen on dev prompts and then
scored on held-out ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from jaxtyping import Float
from torch import Tensor

from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, Patch, PlanRow
from interp.models import HookedModel
from interp.prompts import PromptBatch


@dataclass
class TaskVector:
    """Replace the last-token residual of a 0-shot prompt with the mean k-shot one."""

    max_batch: int | None = None

    def plan(
        self, resid: Float[Tensor, "layer d_model"], batch: PromptBatch, layers: list[int]
    ) -> InterventionPlan:
        """One row per ``(layer, prompt)``, and an unedited row per prompt (``layer = -1``)."""
        rows = []
        for p, last in enumerate(batch.s_q.tolist()):
            rows.append(PlanRow(p, (), (("layer", -1),)))
            for layer in layers:
                patch = Patch(
                    f"blocks.{layer}.hook_resid_post",
                    "tensor",
                    positions=(last,),
                    tensor=f"tv{layer}",
                )
                rows.append(PlanRow(p, (patch,), (("layer", layer),)))
        tensors = {f"tv{layer}": resid[layer] for layer in layers}
        return InterventionPlan(rows, base="clean", tensors=tensors)

    def sweep(
        self,
        model: HookedModel,
        batch: PromptBatch,
        resid,
        layers=None,
        engine: Engine | None = None,
    ) -> pd.DataFrame:
        """Rows ``(layer, prompt, correct)``: the argmax over the vocabulary at the last
        token against the answer's first token."""
        layers = list(range(model.cfg.n_layers)) if layers is None else layers
        engine = engine or Engine(model, max_batch=self.max_batch)
        table = engine.run(self.plan(resid, batch, layers), batch, metric="acc", progress=False)
        return table.rename(columns={"metric": "correct"})


def best_layer(sweep: pd.DataFrame) -> tuple[int, float]:
    """The edited layer of highest accuracy (the earliest on ties) and that accuracy."""
    acc = sweep[sweep.layer >= 0].groupby("layer").correct.mean()
    layer = int(acc.idxmax())
    return layer, float(acc.loc[layer])
