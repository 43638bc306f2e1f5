"""The batches the organism is trained on.

The organism's task families are :mod:`interp.organism.families`, one source of families that
the suite (:mod:`interp.tasks.suite`) collects; they and the suite's lookups are named here too,
where older code imported them from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from interp.organism import language as lang
from interp.organism.families import ORGANISM_FAMILIES  # noqa: F401  (re-exported)
from interp.prompts import (
    CIRCUIT_TEMPLATE,
    FUNCTION_TEMPLATE,
    KV_TEMPLATE,
    RANKING_TEMPLATE,
    PromptBatch,
    PromptBuilder,
)
from interp.tasks.family import Kind, TaskFamily  # noqa: F401  (re-exported)
from interp.tasks.suite import (  # noqa: F401  (re-exported: the older home of these names)
    FUNCTION_FAMILIES,
    TASK_FAMILIES,
    build_family_batch,
    build_pair_batches,
    get_family,
)

# ---------------------------------------------------------------------------------------------
# Training batches: prompts with their answer appended, and per-token loss weights.


@dataclass
class TrainBatch:
    tokens: torch.Tensor  # (batch, pos) int64
    weights: torch.Tensor  # (batch, pos - 1) float: loss weight of predicting token t+1


def _kv_training_episode(rng: random.Random, n_pairs: int) -> lang.Episode:
    """Key-value lines, then repeats of earlier keys: every repeat's value is learnable,
    where a single final query would give one useful token per 300."""
    ep = lang.sample_kv(rng, n_pairs)
    repeats = [ep.docs[i] for i in rng.sample(range(len(ep.docs)), min(8, len(ep.docs)))]
    ep.docs = ep.docs + repeats[:-1]
    ep.query, ep.answer = repeats[-1]
    return ep


def sample_training_batch(
    builder: PromptBuilder, rng: random.Random, tokens_per_batch: int
) -> TrainBatch:
    """One training batch. Classification (50% of the rows overall; 9/10 with arbitrary labels,
    which need ICL) and function prompts (30%) are mixed row by row, each row with its own
    shot count in a window of four, so every step holds every kind of in-context problem at
    similar lengths (single-kind, single-k batches left the class-matching retrieval
    unlearned after 2,300 steps). Ranking (10%) and key-value (10%) batches are long and come
    alone. Shots run 1..10: a 0-shot arbitrary or function prompt has no learnable answer,
    and every demo label after the first is itself an in-context prediction."""
    r = rng.random()
    if r < 0.8:
        k_hi = rng.randint(1, 10)
        n = max(8, tokens_per_batch // (10 * k_hi + 12))
        classify, functions = [], []
        tasks = [(op, pos) for op in lang.FUNCTION_OPS for pos in lang.FUNCTION_POSITIONS]
        for _ in range(n):
            k = rng.randint(max(1, k_hi - 3), k_hi)
            if rng.random() < 5 / 8:
                classify.append(lang.sample_classification(rng, k, rng.random() < 0.9))
            else:
                functions.append(lang.sample_function(rng, k, *rng.choice(tasks)))
        return _with_answers(
            [
                builder.build(t, eps)
                for t, eps in ((CIRCUIT_TEMPLATE, classify), (FUNCTION_TEMPLATE, functions))
                if eps
            ]
        )
    if r < 0.9:
        n_docs = rng.randint(3, 14)
        n = max(4, tokens_per_batch // (14 * n_docs + 8))
        eps = [lang.sample_ranking(rng, n_docs) for _ in range(n)]
        return _with_answers([builder.build(RANKING_TEMPLATE, eps)])
    n_pairs = rng.randint(8, 66)
    n = max(4, tokens_per_batch // (4 * n_pairs + 36))
    eps = [_kv_training_episode(rng, n_pairs) for _ in range(n)]
    return _with_answers([builder.build(KV_TEMPLATE, eps)])


def _with_answers(batches: list[PromptBatch], answer_weight: float = 3.0) -> TrainBatch:
    rows, weights = [], []
    for b in batches:
        for i, ann in enumerate(b.annotations):
            row = b.tokens[i, : ann.length].tolist() + [int(b.answer_ids[i])]
            w = [1.0] * (len(row) - 1)
            for p in [*ann.y, len(row) - 1]:  # demo labels and the answer: the ICL targets
                w[p - 1] = answer_weight
            rows.append(row)
            weights.append(w)
    longest = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), longest, dtype=torch.long)
    wt = torch.zeros(len(rows), longest - 1)
    for i, (r, w) in enumerate(zip(rows, weights)):
        tokens[i, : len(r)] = torch.tensor(r)
        wt[i, : len(w)] = torch.tensor(w)
    return TrainBatch(tokens, wt)
