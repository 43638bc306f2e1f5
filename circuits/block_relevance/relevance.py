"""Block relevance from attention scores (docs/analyses/block-relevance.md), as tensor functions.

BlockRank reads relevance without decoding: the last query rows' *pre-softmax* scores to the
document tokens, softmaxed over document tokens only, summed per document block. Softmaxing
over documents alone drops the attention sinks (BOS, template text) that take most of a row's
mass in a real model, so what is left compares documents with each other. Mathematically this
equals the post-softmax pattern renormalised over document tokens (the row's normaliser
cancels); the test checks that identity on random scores.

The functions take tensors, not models, so the tests feed hand-made scores with known answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.prompts import Annotation

NOT_A_DOCUMENT = -1
"""``doc_of_token`` value of a token outside every document block."""


def doc_of_token(annotations: Sequence[Annotation], length: int) -> Int[Tensor, "batch pos"]:
    """Per prompt and position, the index of the document block holding it, or -1."""
    out = torch.full((len(annotations), length), NOT_A_DOCUMENT, dtype=torch.long)
    for b, ann in enumerate(annotations):
        for d, (start, end) in enumerate(ann.blocks):
            out[b, start:end] = d
    return out


def query_rows(annotations: Sequence[Annotation], n_rows: int = 2) -> Int[Tensor, "batch rows"]:
    """The last ``n_rows`` positions of each prompt (``s_q`` and the tokens before it): for the
    ranking prompt, the answer opener ``[`` and the token before it."""
    s_q = torch.tensor([a.s_q for a in annotations])
    return s_q[:, None] - torch.arange(n_rows - 1, -1, -1)[None, :]


def gather_rows(
    scores: Float[Tensor, "batch head q k"], rows: Int[Tensor, "batch rows"]
) -> Float[Tensor, "batch head rows k"]:
    """``scores[b, :, rows[b], :]``: each prompt's own query rows (prompts differ in length)."""
    b = torch.arange(scores.shape[0])[:, None]
    return scores[b, :, rows, :].permute(0, 2, 1, 3)


def document_relevance(
    scores: Float[Tensor, "batch head rows k"],
    doc_index: Int[Tensor, "batch k"],
    n_docs: int,
) -> Float[Tensor, "batch head doc"]:
    """Relevance ``r[b, h, d]``: per row, softmax of the scores over document tokens only, summed
    per document block, then averaged over the rows. Each ``r[b, h]`` sums to 1 over documents.

    ``scores`` are pre-softmax (scaled, masked) attention scores from the chosen query rows;
    ``doc_index`` says which document each key position belongs to (-1: none)."""
    in_doc = doc_index >= 0
    masked = scores.float().masked_fill(~in_doc[:, None, None, :], float("-inf"))
    weights = torch.softmax(masked, dim=-1).mean(2)  # (batch, head, k)
    out = torch.zeros(*weights.shape[:2], n_docs, dtype=weights.dtype)
    index = doc_index.clamp(min=0)[:, None, :].expand_as(weights)
    return out.scatter_add_(-1, index, weights * in_doc[:, None, :])


def head_mean(relevance: Float[Tensor, "batch *layer head doc"]) -> Float[Tensor, "batch *l doc"]:
    """r_d (``docs/analyses/block-relevance.md``): the relevance averaged over heads."""
    return relevance.mean(-2)


def calibrate(
    relevance: Float[Tensor, "batch *heads doc"], content_free: Float[Tensor, "batch *heads doc"]
) -> Float[Tensor, "batch *heads doc"]:
    """Relevance minus what the same documents, at the same places, get when the query carries
    no content (``N/A``): a head that always favours the first or the last block, or long
    documents, gives both the same share, and the difference cancels it."""
    return relevance - content_free


def relevance_from_pattern(
    pattern: Float[Tensor, "batch head q k"],
    rows: Int[Tensor, "batch rows"],
    doc_index: Int[Tensor, "batch k"],
    n_docs: int,
) -> Float[Tensor, "batch doc"]:
    """Head- and row-averaged block relevance from post-softmax attention (differentiable, what
    BlockRank's contrastive loss trains): the pattern renormalised over document tokens equals
    the pre-softmax scores re-softmaxed over them, the row normaliser cancelling."""
    b = torch.arange(pattern.shape[0])[:, None]
    picked = pattern[b, :, rows, :].permute(0, 2, 1, 3)  # (batch, head, rows, k)
    in_doc = (doc_index >= 0)[:, None, None, :]
    mass = picked * in_doc
    mass = mass / mass.sum(-1, keepdim=True).clamp_min(1e-30)
    one_hot = torch.nn.functional.one_hot(doc_index.clamp(min=0), n_docs).float()
    one_hot = one_hot * (doc_index >= 0)[..., None]
    return torch.einsum("bhrk,bkd->bd", mass, one_hot) / (mass.shape[1] * mass.shape[2])
