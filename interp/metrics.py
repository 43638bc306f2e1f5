"""Metrics on the logits at each row's query forerunner ``s_q``.

A metric is built once from the clean and corrupted batches and then called on a chunk of plan
rows: ``metric(logits_at_sq, prompt_index) -> one value per row``. Building it up front lets the
engine evaluate every row of a chunk in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import IclscopeError
from interp.prompts import PromptBatch

Metric = Callable[[Float[Tensor, "rows d_vocab"], Int[Tensor, " rows"]], Float[Tensor, " rows"]]
MetricName = Literal["logit_diff", "prob", "acc", "kl"]


def _rows(n: int) -> Tensor:
    return torch.arange(n)


def logit_diff(clean: PromptBatch, corrupted: PromptBatch) -> Metric:
    """Logit of the clean answer minus logit of the corrupted answer."""
    good, bad = clean.answer_ids, corrupted.answer_ids

    def metric(logits, prompt):
        rows = _rows(len(prompt))
        return logits[rows, good[prompt]] - logits[rows, bad[prompt]]

    return metric


def label_prob(clean: PromptBatch) -> Metric:
    """Probability of the clean answer."""

    def metric(logits, prompt):
        return torch.softmax(logits.float(), -1)[_rows(len(prompt)), clean.answer_ids[prompt]]

    return metric


def label_acc(clean: PromptBatch) -> Metric:
    """1 where the argmax over the prompt's candidate labels (or the vocabulary) is the answer."""
    candidates = [torch.tensor(c) if c else None for c in clean.label_ids]

    def metric(logits, prompt):
        out = torch.empty(len(prompt))
        for i, p in enumerate(prompt.tolist()):
            c = candidates[p]
            pred = c[logits[i, c].argmax()] if c is not None else logits[i].argmax()
            out[i] = float(pred == clean.answer_ids[p])
        return out

    return metric


def kl_to_clean(clean_logits: Float[Tensor, "prompts d_vocab"]) -> Metric:
    """KL(clean || edited) of the next-token distributions at ``s_q``."""
    clean_logp = torch.log_softmax(clean_logits.float(), -1)

    def metric(logits, prompt):
        logp = torch.log_softmax(logits.float(), -1)
        ref = clean_logp[prompt]
        return (ref.exp() * (ref - logp)).sum(-1)

    return metric


def build_metric(
    name: str,
    clean: PromptBatch,
    corrupted: PromptBatch | None,
    clean_logits: Tensor | None = None,
) -> Metric:
    """The metric called ``name``, bound to these batches."""
    if name == "logit_diff":
        if corrupted is None:
            raise IclscopeError("logit_diff needs corrupted prompts", fix="use --metric prob")
        return logit_diff(clean, corrupted)
    if name == "prob":
        return label_prob(clean)
    if name == "acc":
        return label_acc(clean)
    if name == "kl":
        if clean_logits is None:
            raise IclscopeError("kl needs the clean run's logits")
        return kl_to_clean(clean_logits)
    raise IclscopeError(f"unknown metric {name!r}", fix="use logit_diff, prob, acc or kl")
