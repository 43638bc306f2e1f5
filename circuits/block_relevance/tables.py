"""Block relevance's tables, built from the forward passes' relevance: every variant, prompt
set, layer and head's metrics (:func:`scores_table`, its intervals from
:mod:`~circuits.block_relevance.intervals`), the best head of each variant, the position bias
and the held-out prompts' documents at the best head."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from circuits.block_relevance.intervals import add_intervals, proportion_ci
from circuits.block_relevance.metrics import positional_heads, prompt_metrics, top_position_share
from circuits.block_relevance.result import MEAN_HEAD


@dataclass
class RelevanceData:
    """What the forward passes give, for every prompt: relevance ``(batch, layer, head, doc)``
    per variant, the gold document, and the decoded answers."""

    relevance: dict[str, Float[Tensor, "batch layer head doc"]]
    gold: Tensor
    decoded: Tensor
    decoded_sparse: Tensor
    answer_ids: Tensor
    label_ids: list[list[int]]
    texts: list[str]
    docs: list[list[tuple[str, str]]]
    """Per prompt, its documents as (ID, content)."""


Scores = dict[tuple[str, str], dict[str, Tensor]]
"""(variant, prompt set) -> metric -> per-prompt values ``(prompt, layer, head)``, the mean
over heads as the last head."""


def accuracy(decoded: Tensor, answers: Tensor) -> float:
    return float((decoded == answers).float().mean()) if len(answers) else float("nan")


def decoded_accuracy(key: str, decoded: Tensor, answers: Tensor) -> dict:
    """``key`` (the share of prompts decoded to the gold ID) and its Wilson interval."""
    hits = decoded == answers
    return {key: accuracy(decoded, answers), f"{key}_ci": proportion_ci(hits)}


def with_head_mean(rel: Float[Tensor, "batch layer head doc"]) -> Tensor:
    """Heads ``0..H-1`` then their mean as one more head (index ``-1`` in the tables)."""
    return torch.cat([rel, rel.mean(2, keepdim=True)], 2)


def prompt_scores(data: RelevanceData, parts: dict[str, slice]) -> Scores:
    """Each variant and prompt set's per-prompt metrics at every layer and head."""
    return {
        (variant, split): prompt_metrics(with_head_mean(rel)[part], data.gold[part])
        for variant, rel in data.relevance.items()
        for split, part in parts.items()
    }


def scores_table(scores: Scores) -> pd.DataFrame:
    """Every variant, prompt set, layer and head's precision@1, MRR and nDCG@10: the means of
    ``scores`` over prompts (the intervals come after the picks: :func:`with_intervals`)."""
    rows = []
    for (variant, split), per_prompt in scores.items():
        means = {k: v.mean(0) for k, v in per_prompt.items()}
        n_layers, n_heads = means["p_at_1"].shape
        for layer in range(n_layers):
            for h in range(n_heads):
                rows.append(
                    {
                        "variant": variant,
                        "split": split,
                        "layer": layer,
                        "head": MEAN_HEAD if h == n_heads - 1 else h,
                        **{k: float(v[layer, h]) for k, v in means.items()},
                    }
                )
    return pd.DataFrame(rows)


def with_intervals(
    heads: pd.DataFrame, scores: Scores, best: dict[str, list[int]], seed: int = 0
) -> pd.DataFrame:
    """``heads`` with the 95% intervals of the rows that are reported: the head-averaged
    relevance at every layer and each variant's picked head, on every held-out set."""
    picked = pd.Series(False, index=heads.index)
    for variant, (layer, head) in best.items():
        picked |= (heads.variant == variant) & (heads.layer == layer) & (heads["head"] == head)
    wanted = (heads.split != "select") & ((heads["head"] == MEAN_HEAD) | picked)
    return add_intervals(heads, scores, wanted, seed)


def pick_best(heads: pd.DataFrame, variant: str) -> list[int]:
    """The single head with the highest precision@1 on the selection prompts (ties: MRR,
    then nDCG@10, then the earliest layer and head)."""
    sel = heads.query("variant == @variant and split == 'select' and head >= 0")
    top = sel.sort_values(
        ["p_at_1", "mrr", "ndcg10", "layer", "head"], ascending=[False, False, False, True, True]
    ).iloc[0]
    return [int(top.layer), int(top["head"])]


def position_table(data: RelevanceData, part: slice) -> tuple[pd.DataFrame, dict]:
    """How often each position is ranked first, on the prompts ``part``."""
    rows, bias = [], {}
    for variant, rel in data.relevance.items():
        share = top_position_share(rel[part])  # (layer, head, doc)
        bias[variant] = positional_heads(share)
        for layer in range(share.shape[0]):
            for head in range(share.shape[1]):
                for pos in range(share.shape[2]):
                    rows.append(
                        {
                            "variant": variant,
                            "layer": layer,
                            "head": head,
                            "position": pos,
                            "share": float(share[layer, head, pos]),
                        }
                    )
    return pd.DataFrame(rows), bias


def decoded_id(data: RelevanceData, b: int) -> str:
    """The document ID prompt ``b`` decoded to, or ``other`` (a token that is no ID)."""
    for (doc_id, _), token in zip(data.docs[b], data.label_ids[b]):
        if token == int(data.decoded[b]):
            return doc_id
    return "other"


def prompts_table(data: RelevanceData, best: list[int], half: int, n: int) -> pd.DataFrame:
    """Every held-out prompt's (``half..n``) documents with their relevance at the best
    head."""
    layer, head = best
    raw = data.relevance["raw"][:, layer, head]
    cal = data.relevance["calibrated"][:, layer, head]
    rows = []
    for b in range(half, n):
        decoded = decoded_id(data, b)
        correct = bool(data.decoded[b] == data.answer_ids[b])
        for d, (doc_id, content) in enumerate(data.docs[b]):
            rows.append(
                {
                    "prompt": b,
                    "position": d,
                    "doc_id": doc_id,
                    "content": content,
                    "relevance": float(raw[b, d]),
                    "calibrated": float(cal[b, d]),
                    "gold": d == int(data.gold[b]),
                    "decoded": decoded,
                    "correct": correct,
                }
            )
    return pd.DataFrame(rows)
