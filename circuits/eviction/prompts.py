"""The prompts and the model of an eviction run: ICL families with ``shots`` demonstrations,
or key-value retrieval at each of ``lengths`` tokens, built for the plain Hugging Face model
loaded with eager attention (the fast after-prefill path needs its attention weights and mask
argument).

The model and its prompt builder come together because the builder reads the model's folder
(whether prompts start with BOS); a Ray worker loads the model by the same function.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from interp.errors import IclscopeError
from interp.prompts import PromptBatch, PromptBuilder
from interp.tasks.suite import get_family

KINDS = ("classification", "function", "retrieval")


def load_eager(model: str):
    """``(hf, tokenizer, builder)``: the plain model with eager attention, left padding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp.models import resolve_spec

    folder, _ = resolve_spec(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    n_ctx = getattr(hf.config, "max_position_embeddings", None)
    return hf, tokenizer, eviction_builder(tokenizer, folder, n_ctx)


def eviction_builder(tokenizer, folder: str, n_ctx: int | None = None) -> PromptBuilder:
    """The prompts of an eviction run: left-padded, scored on the answer's first token, with
    the model's BOS where its folder says prompts start with one (Gemma needs it; SmolLM2's
    BOS is a chat marker). Separate from the model so a test can check prompts from the
    tokenizer alone."""
    from interp.models.gguf_cache import prepend_bos

    return PromptBuilder(
        tokenizer, n_ctx=n_ctx, prepend_bos=prepend_bos(folder), padding_side="left", labels="first"
    )


def eviction_settings(
    builder: PromptBuilder,
    task: str,
    shots: int,
    prompts: int,
    lengths: Sequence[int],
    seed: int,
    kv_keys: str = "words",
) -> dict[str, PromptBatch]:
    """Prompt batches by setting: ``"16 shots"`` for ICL families, ``"512 tokens"`` ... for
    key-value retrieval (half as many prompts at each doubling past 512). ``kv_keys="digits"``
    draws 3-digit keys (``123: word`` lines) instead of the family's word keys."""
    from interp.tasks.evaluate import pairs_for_tokens

    fam = get_family(task)
    if fam.kind not in KINDS:
        raise IclscopeError(
            f"eviction runs on ICL and key-value families, not {task!r} ({fam.kind})",
            fix="use a function or classification family (e.g. nl_capital) or nl_kv_words",
        )
    rng = random.Random(f"eviction:{task}:{seed}")
    if fam.kind != "retrieval":
        return {
            f"{shots} shots": builder.build(
                fam.template, [fam.sample(rng, shots) for _ in range(prompts)]
            )
        }
    if kv_keys not in KV_KEYS:
        raise IclscopeError(f"unknown key kind {kv_keys!r}", fix=f"use one of {KV_KEYS}")
    sample = fam.sample if kv_keys == "words" else sample_digit_kv
    out = {}
    for length in lengths:
        n = max(4, prompts * 512 // max(length, 512))
        if kv_keys == "words":
            pairs = pairs_for_tokens(builder, fam, length)
        else:
            probe = builder.build(fam.template, [sample_digit_kv(rng, 16) for _ in range(4)])
            per_pair = sum(a.length for a in probe.annotations) / (4 * 16)
            pairs = min(900, int(length / per_pair))
        out[f"{length} tokens"] = builder.build(
            fam.template, [sample(rng, pairs) for _ in range(n)]
        )
    return out


KV_KEYS = ("words", "digits")


def sample_digit_kv(rng: random.Random, n_pairs: int):
    """``n_pairs`` lines ``NNN: word`` with distinct 3-digit keys, one of them asked for (the
    format a probe found Gemma 3 270M retrieves well, where word keys fail)."""
    from interp.organism.language import Episode
    from interp.tasks.natural import KV_WORDS

    keys = [str(k) for k in rng.sample(range(100, 1000), n_pairs)]
    pairs = [(k, rng.choice(KV_WORDS)) for k in keys]
    qi = rng.randrange(n_pairs)
    return Episode([], keys[qi], pairs[qi][1], labels=(), docs=pairs, meta={"index": qi})
