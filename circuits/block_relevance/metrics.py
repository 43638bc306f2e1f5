"""Ranking metrics against one gold document, and the position bias of a ranking.

Every prompt has exactly one relevant document, so the metrics reduce to functions of the gold
document's rank ``k`` (1 = ranked first): precision@1 = 1[k = 1], reciprocal rank = 1/k, and
nDCG@10 = 1/log2(k + 1) when k <= 10, else 0 (the ideal DCG of one relevant document is 1).
Ties are broken against the gold document (a head giving every document the same score does
not score by luck).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor


def gold_rank(
    relevance: Float[Tensor, "batch *heads doc"], gold: Int[Tensor, " batch"]
) -> Int[Tensor, " batch *heads"]:
    """1-based rank of the gold document: 1 + the number of documents scored at least as high
    (other than the gold one)."""
    shape = (len(gold),) + (1,) * (relevance.dim() - 1)
    g = relevance.gather(-1, gold.view(shape).expand(*relevance.shape[:-1], 1))
    return (relevance >= g).sum(-1)


def precision_at_1(rank: Int[Tensor, " batch *heads"]) -> Float[Tensor, "*heads"]:
    return (rank == 1).float().mean(0)


def mrr(rank: Int[Tensor, " batch *heads"]) -> Float[Tensor, "*heads"]:
    return (1.0 / rank.float()).mean(0)


def ndcg_at(rank: Int[Tensor, " batch *heads"], k: int = 10) -> Float[Tensor, "*heads"]:
    gain = 1.0 / torch.log2(rank.float() + 1.0)
    return torch.where(rank <= k, gain, torch.zeros_like(gain)).mean(0)


def ranking_metrics(
    relevance: Float[Tensor, "batch *heads doc"], gold: Int[Tensor, " batch"]
) -> dict[str, Tensor]:
    """``p_at_1``, ``mrr`` and ``ndcg10``, each ``(*heads)``."""
    rank = gold_rank(relevance, gold)
    return {"p_at_1": precision_at_1(rank), "mrr": mrr(rank), "ndcg10": ndcg_at(rank, 10)}


def prompt_metrics(
    relevance: Float[Tensor, "batch *heads doc"], gold: Int[Tensor, " batch"]
) -> dict[str, Tensor]:
    """Each prompt's own ``p_at_1`` (0 or 1), reciprocal rank and nDCG@10, each ``(batch,
    *heads)``: their means over the batch are :func:`ranking_metrics`, and a bootstrap over
    prompts resamples them."""
    rank = gold_rank(relevance, gold).float()
    gain = 1.0 / torch.log2(rank + 1.0)
    return {
        "p_at_1": (rank == 1).float(),
        "mrr": 1.0 / rank,
        "ndcg10": torch.where(rank <= 10, gain, torch.zeros_like(gain)),
    }


def top_position_share(
    relevance: Float[Tensor, "batch *heads doc"],
) -> Float[Tensor, "*heads doc"]:
    """How often each document *position* is ranked first: a content-reading ranker spreads
    evenly (the gold document is placed at random), a positional one piles on one position."""
    top = relevance.argmax(-1)
    n_docs = relevance.shape[-1]
    return torch.nn.functional.one_hot(top, n_docs).float().mean(0)


def positional_heads(share: Float[Tensor, "*heads doc"], threshold: float = 0.5) -> dict:
    """Counts of heads that rank the first / the last document first on more than ``threshold``
    of the prompts, out of all heads."""
    flat = share.reshape(-1, share.shape[-1])
    return {
        "first": int((flat[:, 0] > threshold).sum()),
        "last": int((flat[:, -1] > threshold).sum()),
        "heads": int(flat.shape[0]),
        "threshold": threshold,
        "chance": 1.0 / share.shape[-1],
    }


def ndcg_of_rank(k: int, cutoff: int = 10) -> float:
    """nDCG@cutoff of one prompt whose gold document is ranked ``k``: the slow reference."""
    return 1.0 / math.log2(k + 1) if k <= cutoff else 0.0
