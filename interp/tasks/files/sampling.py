"""Episodes drawn from a task file's splits: demonstrations from ``train``, queries from
``test`` (or ``valid``, for choosing layers and heads), and never the query among its own
demonstrations."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from interp.errors import IclscopeError
from interp.organism.language import Episode
from interp.tasks.files.columns import RankingRow

DOC_IDS: tuple[str, ...] = tuple(str(i) for i in range(10))
"""Ranking prompts name documents 0-9: one token each under the tokenizers iclscope ships
with, so the answer is one token whatever the file's own ids are."""


def _draw_demos(
    rng: random.Random, pool: Sequence[tuple[str, str]], k: int, exclude: str, where: str
) -> list[tuple[str, str]]:
    """``k`` distinct rows of ``pool`` whose input is not ``exclude`` (the query's input)."""
    if k == 0:
        return []
    extra = min(len(pool), k + 8)
    picked = [pool[i] for i in rng.sample(range(len(pool)), extra)]
    demos = [row for row in picked if row[0] != exclude][:k]
    if len(demos) < k:  # the first draw held the query's input too often: filter the pool
        allowed = [row for row in pool if row[0] != exclude]
        if len(allowed) < k:
            raise IclscopeError(
                f"{where} has {len(allowed)} demonstration rows for this query, {k} are asked",
                fix="ask for fewer shots, or give the file more rows",
            )
        demos = rng.sample(allowed, k)
    return demos


@dataclass(frozen=True)
class PairSampler:
    """Function tasks: ``k`` demonstrations drawn at random from the train split and a query
    from ``query_split``."""

    name: str
    splits: dict[str, tuple[tuple[str, str], ...]]
    query_split: str = "test"

    def with_query_split(self, split: str) -> PairSampler:
        return replace(self, query_split=split)

    def queries(self) -> tuple[tuple[str, str], ...]:
        return self.splits[self.query_split] or self.splits["train"]

    def __call__(self, rng: random.Random, k: int) -> Episode:
        query, answer = rng.choice(self.queries())
        demos = _draw_demos(rng, self.splits["train"], k, query, self.name)
        return Episode(demos, query, answer, labels=(), meta={"task": self.name})


@dataclass(frozen=True)
class ClassSampler(PairSampler):
    """Classification: the query's class is drawn uniformly (so chance is one over the number
    of classes), and the demonstrations cycle over the classes in a shuffled order, as the
    built-in classification families do."""

    classes: tuple[str, ...] = ()

    @cached_property
    def _by_class(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {}
        for split, rows in self.splits.items():
            out[split] = {c: [] for c in self.classes}
            for x, y in rows:
                out[split][y].append(x)
        return out

    def by_class(self, split: str) -> dict[str, list[str]]:
        """Inputs of ``split`` by class (of train when ``split`` is empty)."""
        return self._by_class[split if self.splits[split] else "train"]

    def __call__(self, rng: random.Random, k: int) -> Episode:
        queries = self.by_class(self.query_split)
        q_cls = rng.choice([c for c in self.classes if queries[c]])
        query = rng.choice(queries[q_cls])
        train = self.by_class("train")
        demo_classes = [self.classes[i % len(self.classes)] for i in range(k)]
        rng.shuffle(demo_classes)
        demos = []
        for cls in dict.fromkeys(demo_classes):  # first-seen order: a set's order varies by run
            need = demo_classes.count(cls)
            rows = _draw_demos(rng, [(x, cls) for x in train[cls]], need, query, self.name)
            demos += rows
        rng.shuffle(demos)
        names = {c: c for c in self.classes}
        return Episode(demos, query, q_cls, self.classes, meta={"class": q_cls, "label_map": names})


@dataclass(frozen=True)
class RankingSampler:
    """Ranking: one row per prompt; its relevant document and ``k - 1`` others, renamed 0-9
    in a random order (the file's ids are kept in ``meta``)."""

    name: str
    splits: dict[str, tuple[RankingRow, ...]]
    query_split: str = "test"

    def with_query_split(self, split: str) -> RankingSampler:
        return replace(self, query_split=split)

    def __call__(self, rng: random.Random, k: int) -> Episode:
        if not 1 <= k <= len(DOC_IDS):
            raise IclscopeError(
                f"ranking prompts hold 1 to {len(DOC_IDS)} documents, not {k}",
                fix="ask for at most 10 documents",
            )
        row = rng.choice(self.splits[self.query_split] or self.splits["train"])
        golds = [d for d in row.documents if d[0] in row.answers]
        others = [d for d in row.documents if d[0] not in row.answers]
        gold = rng.choice(golds)
        chosen = [gold, *rng.sample(others, min(k - 1, len(others)))]
        rng.shuffle(chosen)
        ids = rng.sample(DOC_IDS, len(chosen))
        index = chosen.index(gold)
        docs = [(new, text) for new, (_, text) in zip(ids, chosen)]
        meta = {"gold": index, "doc_ids": [old for old, _ in chosen]}
        return Episode([], row.query, ids[index], labels=tuple(ids), docs=docs, meta=meta)
