"""The demo's science: which suite a tokenizer builds, and one prompt looked inside (the
logit lens of each label at the query forerunner, and where every head at it attends)."""

from __future__ import annotations

import pandas as pd
import torch

from interp.prompts import token_roles
from interp.tasks.suite import build_family_batch, family_support, get_family
from interp.tokens import shown_token, token_text

DEMO_FAMILIES = {
    "natural": (
        "nl_capital",
        "nl_antonym",
        "nl_verb_past",
        "nl_sentiment_natural",
        "nl_kind_arbitrary",
    ),
    "organism": ("sentiment_semantic", "sentiment_arbitrary", "fn_copy_first", "fn_class_last"),
}
CIRCUIT_TASK = {"natural": "nl_kind_arbitrary", "organism": "sentiment_arbitrary"}
"""The arbitrary-label family of each suite: the circuit's task when no family gains from its
demonstrations (see :func:`circuits.demo.choice.choose_circuit_task`)."""
SHOTS = (0, 1, 2, 4, 8)


def demo_suite(tokenizer) -> str:
    """``natural`` where the tokenizer builds the English suite (real models), else
    ``organism`` (the organism and the tiny test models share its word vocabulary)."""
    ok = all(family_support(get_family(f), tokenizer) is None for f in DEMO_FAMILIES["natural"])
    return "natural" if ok else "organism"


def circuit_candidates(families, tokenizer) -> list[str]:
    """The classification ``families`` whose labels are single tokens on ``tokenizer`` (the
    circuit reads each label at one position), in suite order. Tokenizes, runs no model."""
    fams = [get_family(f) for f in families]
    return [
        f.name for f in fams if f.kind == "classification" and family_support(f, tokenizer) is None
    ]


def first_look(model, task: str, shots: int = 4, seed: int = 0):
    """Logit lens of the answer and attention from ``s_q`` for one prompt, as tidy tables."""
    batch = build_family_batch(model.prompt_builder(), task, 1, shots, seed)
    ann, L = batch.annotations[0], model.cfg.n_layers
    names = [f"blocks.{l}.hook_resid_post" for l in range(L)] + ["blocks.0.hook_resid_pre"]
    names += [f"blocks.{l}.attn.hook_pattern" for l in range(L)]
    _, cache = model.run_with_cache(batch.tokens, names, batch.attention_mask)
    tokens = [shown_token(token_text(model.tokenizer, i)) for i in batch.tokens[0, : ann.length]]
    labels = batch.label_ids[0] or [int(batch.answer_ids[0])]
    resid = [cache["blocks.0.hook_resid_pre"]] + [
        cache[f"blocks.{l}.hook_resid_post"] for l in range(L)
    ]
    lens_rows = []
    for layer, r in enumerate(resid):
        probs = torch.softmax(model.logit_lens(r[0, ann.s_q]).float(), -1)
        for lab in labels:
            lens_rows.append(
                {
                    "layer": layer,
                    "label": shown_token(token_text(model.tokenizer, lab)),
                    "is_answer": lab == int(batch.answer_ids[0]),
                    "prob": float(probs[lab]),
                    "rank": int((probs > probs[lab]).sum()),
                }
            )
    roles = token_roles(ann, ann.length)
    att_rows = [
        {
            "layer": l,
            "head": h,
            "position": p,
            "token": tokens[p],
            "role": roles[p],
            "weight": float(cache[f"blocks.{l}.attn.hook_pattern"][0, h, ann.s_q, p]),
        }
        for l in range(L)
        for h in range(model.cfg.n_heads)
        for p in range(ann.length)
    ]
    return batch.texts[0], pd.DataFrame(lens_rows), pd.DataFrame(att_rows)
