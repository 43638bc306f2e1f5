"""Attribution patching: the first-order estimate of every patch from one forward and one
backward pass.

For a hook activation ``a`` the effect of patching clean into corrupted is approximated by
``(a_clean - a_corrupt) . d metric / d a``, evaluated on the corrupted run: a linearisation
that costs two passes instead of one per component. Its rank agreement with exact patching
tells how far the linear picture can be trusted for a given model and task.

An attribution is therefore already on the *effect* scale of :mod:`interp.engine.metrics`: it
estimates ``patched - corrupted`` of a denoising patch, in the metric's units. It must be
compared with the exact sweep's effect on the *same* metric; the gradient is taken of the metric
the sweep uses (any but ``acc``, which has none).
"""

from __future__ import annotations

import pandas as pd
import torch
from scipy.stats import spearmanr

from interp.engine.metrics import build_metric
from interp.errors import IclscopeError
from interp.models import HookedModel
from interp.prompts import PromptBatch


def attribute(
    model: HookedModel,
    clean: PromptBatch,
    corrupted: PromptBatch,
    component: str,
    metric: str = "logit_diff",
) -> pd.DataFrame:
    """Estimated effect on ``metric`` of patching each head (``heads``: per layer and head,
    summed over positions) or each residual position (``resid``: ``hook_resid_pre`` per layer
    and position) from clean into corrupted, averaged over prompts."""
    if model.backend != "transformer_lens":
        raise IclscopeError(
            "attribution patching needs gradients through the model",
            fix="load the model with backend='transformer_lens'",
        )
    kind = {"heads": "attn.hook_z", "resid": "hook_resid_pre"}.get(component)
    if kind is None:
        raise IclscopeError(f"no attribution for {component!r}", fix="use heads or resid")
    if metric == "acc":
        raise IclscopeError("accuracy has no gradient to attribute", fix="use logit_diff or prob")
    names = [f"blocks.{layer}.{kind}" for layer in range(model.cfg.n_layers)]
    clean_logits, clean_cache = model.run_with_cache(clean.tokens, names, clean.attention_mask)
    rows = torch.arange(len(corrupted))
    score = build_metric(metric, clean, corrupted, clean_logits[rows, clean.s_q].detach())
    acts: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(act, hook):
            # a clone that the rest of the forward uses, so its .grad is the full gradient
            act = act.clone()
            act.retain_grad()
            acts[name] = act
            return act

        return hook

    with torch.enable_grad():
        logits = model.run_with_hooks(
            corrupted.tokens, [(n, keep(n)) for n in names], corrupted.attention_mask
        )
        score(logits[rows, corrupted.s_q], rows).sum().backward()
    out = []
    for layer, name in enumerate(names):
        delta = (clean_cache[name] - acts[name].detach()) * acts[name].grad
        if component == "heads":  # (batch, pos, head, d) -> per head
            per = delta.sum(dim=(1, 3)).mean(0)
            out += [{"layer": layer, "head": h, "attribution": float(v)} for h, v in enumerate(per)]
        else:  # (batch, pos, d) -> per position
            per = delta.sum(-1).mean(0)
            out += [
                {"layer": layer, "position": p, "attribution": float(v)} for p, v in enumerate(per)
            ]
    model.hf_model.zero_grad(set_to_none=True)
    return pd.DataFrame(out)


def rank_agreement(exact: pd.DataFrame, approx: pd.DataFrame, keys: list[str]) -> float:
    """Spearman correlation between exact patching effects (``exact.effect``, patched minus
    corrupted, per component) and attributions, signed: a head that the linear picture says
    restores the answer must be one that patching finds restoring it."""
    merged = exact.merge(approx, on=keys)
    return float(spearmanr(merged["effect"], merged["attribution"]).statistic)
