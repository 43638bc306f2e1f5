"""Function vectors (Todd et al., ICLR 2024): the summed output of the heads that carry the
task, added to the residual stream of one layer at the last token of a 0-shot prompt.

    FV = sum over the top-k heads (l, h) by AIE of  out_proj_l(te[l, h] in head h's slice)

An addition is not a mix, but here it is a replacement: before the edit, the 0-shot prompt's
state ``h[L, last]`` is the unedited run's, known from one cached forward, so adding the FV is
writing ``h[L, last] + FV`` there. The layer sweep is therefore one
:class:`~interp.engine.plan.InterventionPlan` of ``(layer, prompt)`` rows (``source='tensor'``)
that the engine batches and resumes after layer L. :func:`add_sweep` adds the vector with a
hook instead (every row a forward from the embeddings): the slow reference the plan is tested
against.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from circuits.task_vectors.embeddings import last_token_states, resid_names
from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, Patch, PlanRow
from interp.models import HookedModel
from interp.prompts import PromptBatch


def out_proj(hf, layer: int):
    """The attention output projection of ``layer`` in a Hugging Face causal LM (Llama
    ``o_proj``, GPT-2 ``c_proj``)."""
    block = hf.base_model
    layers = getattr(block, "layers", None) or block.h
    attn = getattr(layers[layer], "self_attn", None) or layers[layer].attn
    return getattr(attn, "o_proj", None) or attn.c_proj


@torch.no_grad()
def function_vector(
    model: HookedModel, te: Float[Tensor, "layer head d_head"], heads: list[tuple[int, int]]
) -> Float[Tensor, " d_model"]:
    """Sum over ``heads`` of each head's mean output through the output projection (the
    projection's bias, where it has one, is not part of any head and is left out)."""
    n_heads, d_head = te.shape[1], te.shape[2]
    fv = torch.zeros(model.cfg.d_model)
    for layer, head in heads:
        proj = out_proj(model.plain_model(), layer)
        w = next(proj.parameters())
        z = torch.zeros(2, n_heads * d_head, dtype=w.dtype, device=w.device)
        z[0, head * d_head : (head + 1) * d_head] = te[layer, head].to(w.dtype)
        out = proj(z)
        fv += (out[0] - out[1]).float().cpu()
    return fv


@torch.no_grad()
def add_sweep(
    model: HookedModel,
    batch: PromptBatch,
    vector: Float[Tensor, " d_model"],
    layers: list[int],
    chunk: int = 64,
) -> pd.DataFrame:
    """Accuracy rows ``(layer, prompt, correct)`` with ``vector`` added to
    ``hook_resid_post`` of ``layer`` at each prompt's last token; ``layer = -1`` adds nothing."""
    grid = [(layer, p) for layer in [-1, *layers] for p in range(len(batch))]
    s_q, answers = batch.s_q, batch.answer_ids
    correct = []
    for lo in range(0, len(grid), chunk):
        part = grid[lo : lo + chunk]
        layer_of = torch.tensor([layer for layer, _ in part])
        prompt = torch.tensor([p for _, p in part])
        rows, last = torch.arange(len(part)), s_q[prompt]

        def add(layer: int, layer_of=layer_of, rows=rows, last=last):
            mine = layer_of == layer

            def hook(resid, hook=None):
                resid[rows[mine], last[mine]] += vector.to(resid.dtype).to(resid.device)
                return resid

            return hook

        hooks = [
            (f"blocks.{layer}.hook_resid_post", add(layer))
            for layer in sorted(set(layers))
            if (layer_of == layer).any()
        ]
        logits = model.run_with_hooks(batch.tokens[prompt], hooks, batch.attention_mask[prompt])
        pred = logits[rows, last].argmax(-1).cpu()
        correct += (pred == answers[prompt]).tolist()
    return pd.DataFrame(
        {"layer": [g[0] for g in grid], "prompt": [g[1] for g in grid], "correct": correct}
    )


@dataclass
class FunctionVector:
    """Build the FV from the top-``k`` heads and sweep the layer it is added at."""

    k: int = 10
    max_batch: int | None = None

    def build(self, model, te, heads: list[tuple[int, int]]) -> Float[Tensor, " d_model"]:
        return function_vector(model, te, heads[: self.k])

    def plan(
        self,
        fv: Float[Tensor, " d_model"],
        states: Float[Tensor, "prompt layer d_model"],
        batch: PromptBatch,
        layers: list[int],
    ) -> InterventionPlan:
        """Rows ``(layer, prompt)`` writing ``states[p, layer] + fv`` at the last token, and an
        unedited row per prompt (``layer = -1``)."""
        rows, tensors = [], {}
        for p, last in enumerate(batch.s_q.tolist()):
            rows.append(PlanRow(p, (), (("layer", -1),)))
            for layer in layers:
                name = f"fv{layer}_{p}"
                tensors[name] = states[p, layer] + fv
                patch = Patch(
                    f"blocks.{layer}.hook_resid_post", "tensor", positions=(last,), tensor=name
                )
                rows.append(PlanRow(p, (patch,), (("layer", layer),)))
        return InterventionPlan(rows, base="clean", tensors=tensors)

    def sweep(
        self, model: HookedModel, batch: PromptBatch, fv, layers=None, engine: Engine | None = None
    ) -> pd.DataFrame:
        """Rows ``(layer, prompt, correct)``, as :func:`add_sweep` gives them."""
        layers = list(range(model.cfg.n_layers)) if layers is None else layers
        names = resid_names(model)
        cached = last_token_states(model, batch, names)
        states = torch.stack([cached[n] for n in names], dim=1)  # (prompt, layer, d_model)
        engine = engine or Engine(model, max_batch=self.max_batch)
        table = engine.run(
            self.plan(fv, states, batch, layers), batch, metric="acc", progress=False
        )
        return table.rename(columns={"metric": "correct"})
