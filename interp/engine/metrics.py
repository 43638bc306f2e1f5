"""Metrics on the logits at each row's query forerunner ``s_q``, and the effect scale.

A metric is built once from the clean and corrupted batches and then called on a chunk of plan
rows: ``metric(logits_at_sq, prompt_index) -> one value per row``. Building it up front lets the
engine evaluate every row of a chunk in one vectorised call.

A patched metric alone says nothing: ``logit_diff = -10.4`` restores the answer on a model whose
corrupted run sits at -20 and does nothing on one whose corrupted run sits at -10.4. Every
intervention is therefore read against the two unedited runs, its *baselines*:

* the **effect** is ``patched - base``, where ``base`` is the run the plan starts from (the
  corrupted run for denoising patches, the clean run for ablations, knockouts and noising);
* the **normalised effect** divides by the clean-corrupted gap and points both directions the
  same way, so 1 means "this component carries the whole answer":
  ``(patched - corrupted) / (clean - corrupted)`` when denoising,
  ``(clean - patched) / (clean - corrupted)`` when noising.

When the two baselines are equal to within :data:`MIN_GAP` the ratio is noise over noise; it is
NaN then (never ``inf``), and callers say so in their report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import IclscopeError
from interp.prompts import PromptBatch

Metric = Callable[[Float[Tensor, "rows d_vocab"], Int[Tensor, " rows"]], Float[Tensor, " rows"]]
MetricName = Literal["logit_diff", "prob", "acc", "kl"]

HIGHER_IS_CLEANER: dict[str, bool] = {"logit_diff": True, "prob": True, "acc": True, "kl": False}
"""Whether a larger value of the metric is meant to be closer to the clean answer (KL to the
clean run is 0 on the clean run and grows away from it). Only a fallback for
:func:`towards_clean`: a model can get the clean prompts wrong, and then the baselines
themselves say which way is clean."""

MIN_GAP = 1e-4
"""The smallest ``|clean - corrupted|`` a normalised effect divides by, relative to
``max(1, |clean|, |corrupted|)``: absolute for metrics that live below 1 (``prob``, ``acc``, a
small KL), relative for large logit differences. fp32 forwards of one prompt in different
batches already differ by about 1e-6 of the logits' scale; below 1e-4 a gap is that noise."""


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


def normalized_effect(
    patched: Float[np.ndarray, "*rows"],
    clean: Float[np.ndarray, "*rows"],
    corrupted: Float[np.ndarray, "*rows"],
    noising: bool = False,
) -> Float[np.ndarray, "*rows"]:
    """The share of the clean-corrupted gap an intervention moves, 1 = the component carries
    the answer: ``(patched - corrupted) / gap`` when denoising (patching clean into corrupted),
    ``(clean - patched) / gap`` when noising (ablating or knocking out on the clean run), with
    ``gap = clean - corrupted``. NaN wherever the baselines are closer than :data:`MIN_GAP`."""
    patched, clean, corrupted = (np.asarray(x, np.float64) for x in (patched, clean, corrupted))
    gap = clean - corrupted
    moved = clean - patched if noising else patched - corrupted
    flat = baselines_equal(clean, corrupted)
    return np.where(flat, np.nan, moved / np.where(flat, 1.0, gap))


def baselines_equal(
    clean: Float[np.ndarray, "*rows"], corrupted: Float[np.ndarray, "*rows"]
) -> np.ndarray:
    """Where the clean and corrupted runs are the same to within :data:`MIN_GAP`."""
    clean, corrupted = np.asarray(clean, np.float64), np.asarray(corrupted, np.float64)
    scale = np.maximum(1.0, np.maximum(np.abs(clean), np.abs(corrupted)))
    return np.abs(clean - corrupted) <= MIN_GAP * scale


def towards_clean(clean: float, corrupted: float, metric: str) -> float:
    """+1 when a larger metric is closer to the clean run, -1 when a smaller one is: the sign of
    ``clean - corrupted``, or, where the two coincide, the metric's convention
    (:data:`HIGHER_IS_CLEANER`)."""
    if baselines_equal(clean, corrupted):
        return 1.0 if HIGHER_IS_CLEANER.get(metric, True) else -1.0
    return 1.0 if clean > corrupted else -1.0


def ranking_score(
    effect: Float[np.ndarray, "*rows"], direction: float, noising: bool
) -> Float[np.ndarray, "*rows"]:
    """The effect signed so that larger means "this component matters more": how far it moves
    the metric towards clean when denoising (restoration), away from clean when noising
    (damage). ``direction`` is :func:`towards_clean`. Where the baselines differ this ranks
    exactly as the normalised effect does, and it still ranks where they do not."""
    return np.asarray(effect, np.float64) * (-direction if noising else direction)
