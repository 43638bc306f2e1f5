"""How well a model learns each family in context: the numbers ``iclscope eval`` prints.

Scoring follows the families' kinds. Classification takes the argmax over the prompt's own
label words at the query forerunner (Cho et al.); function tasks, ranking and key-value
retrieval take the argmax over the whole vocabulary and compare it with the answer's first
token. Prompts are left-padded so every row's read-out is the last column, and only that
column's logits are computed (``logits_to_keep=1``): over a 49k-262k vocabulary, full logits
would dominate a CPU forward.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from interp.prompts import PromptBatch, PromptBuilder
from interp.tasks.family import TaskFamily
from interp.tasks.suite import get_family

SHOTS = (0, 1, 2, 4, 8)
KV_LENGTHS = (256, 512, 1024, 2048)
EVAL_SEED = 10_007
"""Evaluation prompts are drawn with their own seed, apart from anything a run samples."""


@torch.no_grad()
def last_logits(hf, batch: PromptBatch, chunk: int = 16) -> Float[Tensor, "batch d_vocab"]:
    """Logits at each row's read-out (the last column of a left-padded batch)."""
    assert batch.padding_side == "left", "build evaluation batches with padding_side='left'"
    out = []
    for i in range(0, len(batch), chunk):
        toks, mask = batch.tokens[i : i + chunk], batch.attention_mask[i : i + chunk]
        # positions counted over real tokens: a left-padded row then sees the positions it
        # would alone (models with learned positions, such as GPT-2, depend on it)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = hf(
            input_ids=toks.to(hf.device),
            attention_mask=mask.to(hf.device),
            position_ids=positions.to(hf.device),
            logits_to_keep=1,
        ).logits
        out.append(logits[:, -1].float().cpu())
    return torch.cat(out)


def accuracy(hf, batch: PromptBatch, restrict_to_labels: bool, chunk: int = 16) -> float:
    """Share of prompts whose predicted token is the answer's (first) token."""
    logits = last_logits(hf, batch, chunk)
    if restrict_to_labels:
        preds = torch.tensor(
            [labels[int(logits[i, labels].argmax())] for i, labels in enumerate(batch.label_ids)]
        )
    else:
        preds = logits.argmax(-1)
    return float((preds == batch.answer_ids).float().mean())


def _episodes(fam: TaskFamily, n: int, k: int, seed: int) -> list:
    rng = random.Random(f"eval:{fam.name}:{k}:{seed}")
    return [fam.sample(rng, k) for _ in range(n)]


def _batch(builder: PromptBuilder, fam: TaskFamily, n: int, k: int, seed: int) -> PromptBatch:
    return builder.build(fam.template, _episodes(fam, n, k, seed))


def cell_score(
    hf, tokenizer, builder: PromptBuilder, fam: TaskFamily, n: int, k: int, seed: int, score: str
) -> float:
    """One family at ``k`` shots: first-token accuracy (among the prompt's labels for
    classification), or the exact score (greedy answers compared as normalised text)."""
    episodes = _episodes(fam, n, k, seed)
    batch = builder.build(fam.template, episodes)
    if score == "exact":
        from interp.tasks.scoring import answer_separator, exact_accuracy

        answers = [ep.answer for ep in episodes]
        return exact_accuracy(
            hf, tokenizer, batch, answers, separator=answer_separator(fam.template)
        )
    return accuracy(hf, batch, fam.kind == "classification")


def pairs_for_tokens(builder: PromptBuilder, fam: TaskFamily, tokens: int) -> int:
    """How many key-value pairs make a prompt of about ``tokens`` tokens under this tokenizer."""
    probe = _batch(builder, fam, 4, 16, seed=0)
    lengths = [a.length for a in probe.annotations]
    per_pair = (sum(lengths) / len(lengths)) / 16
    return max(2, int(tokens / per_pair))


def evaluate_model(
    hf,
    tokenizer,
    family_names: Sequence[str],
    shots: Sequence[int] = SHOTS,
    n: int = 64,
    kv_lengths: Sequence[int] = KV_LENGTHS,
    seed: int = EVAL_SEED,
    prepend_bos: bool = True,
    progress: Callable[[str], None] = lambda _: None,
    score: str = "first-token",
) -> dict:
    """The JSON object of ``iclscope eval``: accuracy by family and shots, ranking P@1 (mean
    over ranking families, 10 documents) and key-value accuracy by prompt length.

    ``score`` is ``first-token`` (the answer's first token, as the Function Vectors paper
    scores) or ``exact`` (the greedy answer, normalised, equals the answer) for
    classification and function families; ranking and key-value retrieval are always scored
    by the first token of the answer."""
    n_ctx = getattr(hf.config, "max_position_embeddings", None)
    builder = PromptBuilder(
        tokenizer, n_ctx=n_ctx, prepend_bos=prepend_bos, padding_side="left", labels="first"
    )
    result: dict = {"score": score, "families": {}}
    ranking, kv = [], {}
    for name in family_names:
        fam = get_family(name)
        if fam.kind in ("classification", "function"):
            if fam.kind == "classification" and score == "first-token":
                from interp.tasks.scoring import refuse_first_token_collisions

                refuse_first_token_collisions(tokenizer, fam.labels, what=f"{name}'s labels")
            cells = {}
            for k in shots:
                progress(f"{name} {k}-shot")
                cells[str(k)] = cell_score(hf, tokenizer, builder, fam, n, k, seed, score)
            result["families"][name] = {"kind": fam.kind, "shots": cells}
            if fam.origin is not None:
                result["families"][name]["path"] = fam.origin.path
        elif fam.kind == "ranking":
            progress(f"{name} ({fam.default_k} documents)")
            p1 = accuracy(hf, _batch(builder, fam, n, fam.default_k, seed), False)
            result["families"][name] = {"kind": fam.kind, "p_at_1": p1}
            ranking.append(p1)
        else:
            cells = {}
            for length in kv_lengths:
                if n_ctx is not None and length > n_ctx:
                    continue
                progress(f"{name} at {length} tokens")
                pairs = pairs_for_tokens(builder, fam, length)
                rows = max(8, n * 256 // length)  # long prompts: fewer of them
                batch = _batch(builder, fam, rows, pairs, seed)
                cells[str(length)] = accuracy(hf, batch, False, chunk=max(1, 4096 // length))
            result["families"][name] = {"kind": fam.kind, "tokens": cells}
            kv = kv or cells
    result["ranking_p_at_1"] = sum(ranking) / len(ranking) if ranking else None
    result["kv_retrieval"] = kv or None
    return result
