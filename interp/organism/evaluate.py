"""Held-out scoring of the organism: the numbers ``iclscope organism eval`` prints.

Prompts are drawn with an evaluation seed that training never uses. Classification is scored
as in Cho et al.: the argmax over the prompt's own label words at the query forerunner. The
other families are scored by the model's decoded answer (argmax over the whole vocabulary).
"""

from __future__ import annotations

import torch

from interp.organism.data import ORGANISM_FAMILIES
from interp.prompts import PromptBatch, PromptBuilder
from interp.tasks.suite import build_family_batch

SHOTS = (0, 1, 2, 4, 8)
EVAL_SEED = 10_007  # training draws from seeds < 10_000
FUNCTION_FAMILIES = [n for n, f in ORGANISM_FAMILIES.items() if f.kind == "function"]


@torch.no_grad()
def answer_logits(model, batch: PromptBatch, chunk: int = 64) -> torch.Tensor:
    """Logits at each prompt's query forerunner ``s_q``, in chunks to bound memory."""
    out = []
    for i in range(0, len(batch), chunk):
        toks = batch.tokens[i : i + chunk]
        mask = batch.attention_mask[i : i + chunk]
        logits = model(input_ids=toks, attention_mask=mask).logits
        rows = torch.arange(len(toks))
        out.append(logits[rows, batch.s_q[i : i + chunk]].float())
    return torch.cat(out)


def accuracy(model, batch: PromptBatch, restrict_to_labels: bool) -> float:
    logits = answer_logits(model, batch)
    if restrict_to_labels:
        preds = torch.tensor(
            [labels[int(logits[i, labels].argmax())] for i, labels in enumerate(batch.label_ids)]
        )
    else:
        preds = logits.argmax(-1)
    return float((preds == batch.answer_ids).float().mean())


def evaluate_organism(model, tokenizer, n: int = 200, seed: int = EVAL_SEED) -> dict:
    """The evaluation table of the foundation issue, as one JSON-ready dict."""
    builder = PromptBuilder(tokenizer, n_ctx=model.config.max_position_embeddings)
    result: dict = {}
    for key, family in (
        ("classification_semantic", "sentiment_semantic"),
        ("classification_arbitrary", "sentiment_arbitrary"),
    ):
        result[key] = {
            str(k): accuracy(model, build_family_batch(builder, family, n, k, seed), True)
            for k in SHOTS
        }
    per_task = {
        fam: {
            str(k): accuracy(
                model, build_family_batch(builder, fam, max(n // 4, 20), k, seed), False
            )
            for k in SHOTS
        }
        for fam in FUNCTION_FAMILIES
    }
    result["function_tasks"] = {
        str(k): sum(t[str(k)] for t in per_task.values()) / len(per_task) for k in SHOTS
    }
    result["function_tasks_per_task"] = per_task
    ranking = build_family_batch(builder, "ranking", n, 10, seed)
    result["ranking_p_at_1"] = accuracy(model, ranking, False)
    kv = build_family_batch(builder, "kv_retrieval", n, 64, seed)
    result["kv_retrieval_acc"] = accuracy(model, kv, False)
    result["kv_retrieval_tokens"] = int(kv.tokens.shape[1])
    return result
