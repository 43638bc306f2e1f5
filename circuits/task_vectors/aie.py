"""The average indirect effect (AIE) of every attention head (Todd et al., function vectors).

On corrupted prompts (k-shot prompts whose demonstration labels are shuffled, so the prompt no
longer says what the task is), put one head's mean activation ``te[l, h]`` back at the last
token and measure how much the probability of the right answer rises:

    IE[l, h, p] = P(y_p | corrupted p, z[l, h, last] := te[l, h]) - P(y_p | corrupted p)
    AIE[l, h]   = mean_p IE[l, h, p]

:class:`AverageIndirectEffect` writes every head and trial as one
:class:`~interp.engine.plan.InterventionPlan` (one row per head and prompt, plus one unedited
row per prompt for the baseline) and lets the engine batch it. :func:`aie_loop` is the way the
published code computes it, one forward pass per head and trial, kept as the slow reference
the fast path is tested and benchmarked against.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, Patch, PlanRow
from interp.models import HookedModel
from interp.prompts import PromptBatch


def _grid(table: pd.DataFrame, n_layers: int, n_heads: int) -> Float[Tensor, "layer head"]:
    grid = table.pivot(index="layer", columns="head", values="aie")
    return torch.tensor(grid.reindex(range(n_layers)).to_numpy(), dtype=torch.float64)


@dataclass
class AverageIndirectEffect:
    """Every head's AIE on shuffled-label prompts, as one engine plan."""

    max_batch: int | None = None

    def plan(self, te: Float[Tensor, "layer head d_head"], batch: PromptBatch) -> InterventionPlan:
        """Rows ``(layer, head, prompt)`` patching ``te[l, h]`` into ``z[l, h, last]``, plus a
        baseline row (``layer = head = -1``) per prompt."""
        n_layers, n_heads, _ = te.shape
        rows = []
        for p, last in enumerate(batch.s_q.tolist()):
            rows.append(PlanRow(p, (), (("layer", -1), ("head", -1))))
            for layer in range(n_layers):
                for head in range(n_heads):
                    patch = Patch(
                        f"blocks.{layer}.attn.hook_z",
                        "tensor",
                        positions=(last,),
                        heads=(head,),
                        tensor=f"te{layer}",
                    )
                    rows.append(PlanRow(p, (patch,), (("layer", layer), ("head", head))))
        tensors = {f"te{layer}": te[layer] for layer in range(n_layers)}
        return InterventionPlan(rows, base="clean", tensors=tensors)

    def run(
        self,
        model: HookedModel,
        te: Float[Tensor, "layer head d_head"],
        batch: PromptBatch,
        engine: Engine | None = None,
        progress: bool = False,
    ) -> pd.DataFrame:
        """``(layer, head, aie, aie_std)`` per head; the indirect effect is read as the answer
        probability over the whole vocabulary at the last token."""
        return indirect_effects(self.run_table(model, te, batch, engine, progress))

    def run_table(
        self,
        model: HookedModel,
        te: Float[Tensor, "layer head d_head"],
        batch: PromptBatch,
        engine: Engine | None = None,
        progress: bool = False,
    ) -> pd.DataFrame:
        """The engine's table ``(prompt, layer, head, metric)``, baseline rows included: what
        :func:`indirect_effects` averages and :func:`prompt_effects` keeps per prompt."""
        engine = engine or Engine(model, max_batch=self.max_batch)
        return engine.run(self.plan(te, batch), batch, metric="prob", progress=progress)


def prompt_effects(table: pd.DataFrame) -> pd.DataFrame:
    """``(prompt, layer, head, ie)``: each head's indirect effect on each prompt, ``metric``
    less the unedited baseline of that prompt (the rows an interval over prompts resamples)."""
    base = table[table.layer < 0].set_index("prompt").metric
    heads = table[table.layer >= 0]
    ie = heads.metric.to_numpy() - base.loc[heads.prompt].to_numpy()
    out = heads[["prompt", "layer", "head"]].assign(ie=ie)
    return out.sort_values(["prompt", "layer", "head"], ignore_index=True)


def indirect_effects(table: pd.DataFrame) -> pd.DataFrame:
    """Per head, the mean and spread over prompts of ``metric - baseline of that prompt``."""
    base = table[table.layer < 0].metric
    out = prompt_effects(table).groupby(["layer", "head"]).ie
    out = out.agg(aie="mean", aie_std="std").reset_index()
    out["baseline"] = float(base.mean())
    return out


@torch.no_grad()
def aie_loop(
    model: HookedModel, te: Float[Tensor, "layer head d_head"], batch: PromptBatch
) -> pd.DataFrame:
    """The slow reference: one forward pass per head and prompt (and one per prompt for the
    baseline), each on the prompt alone, as the published code loops. Same table as
    :meth:`AverageIndirectEffect.run`."""
    n_layers, n_heads, _ = te.shape
    records = []
    for p, (last, answer) in enumerate(zip(batch.s_q.tolist(), batch.answer_ids.tolist())):
        n = int(batch.attention_mask[p].sum()) if batch.padding_side == "right" else None
        tokens = batch.tokens[p : p + 1, :n]

        def prob(hooks=(), tokens=tokens, last=last, answer=answer) -> float:
            logits = model.run_with_hooks(tokens, hooks, torch.ones_like(tokens))
            return float(torch.softmax(logits[0, last].float(), -1)[answer])

        records.append({"layer": -1, "head": -1, "prompt": p, "metric": prob()})
        for layer in range(n_layers):
            for head in range(n_heads):

                def put(z, hook, layer=layer, head=head, last=last):
                    z[:, last, head] = te[layer, head].to(z.dtype)
                    return z

                hooks = [(f"blocks.{layer}.attn.hook_z", put)]
                records.append({"layer": layer, "head": head, "prompt": p, "metric": prob(hooks)})
    return indirect_effects(pd.DataFrame(records))


def top_heads(aie: pd.DataFrame, k: int = 10) -> list[tuple[int, int]]:
    """The ``k`` heads of largest AIE, best first."""
    best = aie.sort_values("aie", ascending=False).head(k)
    return [(int(r.layer), int(r.head)) for r in best.itertuples()]
