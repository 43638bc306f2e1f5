"""Task embeddings: mean head outputs and mean residual states at the last prompt token.

``te[l, h]`` is the mean over M k-shot prompts of ``z[l, h, last]`` (the head's output before
the output projection, ``hook_z``): Todd et al.'s mean head activations and Park & Rhee's task
embeddings are this one tensor. The mean residual state ``h[l, last]`` is Hendel et al.'s
task vector, averaged over the same prompts. One cached forward per chunk of prompts gives
both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.models import HookedModel
from interp.models.fast_path import drivable_hook_kinds
from interp.models.module_forward import ModuleForward
from interp.prompts import PromptBatch


@dataclass
class TaskEmbedding:
    """What k-shot prompts of one task leave at their last token, averaged over prompts."""

    heads: Float[Tensor, "layer head d_head"]
    """``te[l, h]``: mean ``z[l, h, last]``."""
    resid: Float[Tensor, "layer d_model"]
    """Mean ``hook_resid_post`` of each layer at the last token (the task vector's source)."""
    prompts: int


def last_token_states(
    model: HookedModel, batch: PromptBatch, names: list[str], chunk: int = 16
) -> dict[str, Tensor]:
    """Per hook, its activation at each prompt's last token (``s_q``): ``(prompt, ...)``."""
    out: dict[str, list[Tensor]] = {n: [] for n in names}
    # the engine's module forward where it applies: the same modules, no hook wrappers
    kinds = drivable_hook_kinds(model.hf_model.config) or set()
    wanted = {n.split(".", 2)[2] for n in names if n.startswith("blocks.")}
    runner = ModuleForward(model.plain_model()) if wanted <= kinds else None
    for lo in range(0, len(batch), chunk):
        toks, mask = batch.tokens[lo : lo + chunk], batch.attention_mask[lo : lo + chunk]
        if runner is not None and batch.padding_side == "right":  # causal: right pads unseen
            cache = runner.record(toks, names, read_at=batch.s_q[lo : lo + chunk])[1].cache
        else:
            cache = model.run_with_cache(toks, names, mask)[1]
        rows, last = torch.arange(len(toks)), batch.s_q[lo : lo + chunk]
        for n in names:
            out[n].append(cache[n][rows, last].float())
    return {n: torch.cat(v) for n, v in out.items()}


def resid_names(model: HookedModel) -> list[str]:
    return [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]


def task_embedding(model: HookedModel, batch: PromptBatch, chunk: int = 16) -> TaskEmbedding:
    """Mean head outputs and residual states at each prompt's last token (``s_q``)."""
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    states = last_token_states(model, batch, z_names + resid_names(model), chunk)
    heads = torch.stack([states[n].mean(0) for n in z_names])
    resid = torch.stack([states[n].mean(0) for n in resid_names(model)])
    return TaskEmbedding(heads, resid, len(batch))
