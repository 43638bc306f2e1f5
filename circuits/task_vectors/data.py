"""Items and prompts for one function task: held-out test items, and the prompts built from
the rest (demonstrations, task embeddings, shuffled-label trials, dev and training prompts).

Every method here is scored on the *same* held-out items, 0-shot (``Q: x\\nA:``), by the
argmax over the whole vocabulary at the last prompt token against the answer's first token.
Only items outside the test split appear in demonstrations, in the prompts that define the
task embeddings, in the dev prompts that choose a layer and in soft injection's training
prompts, so no test item is seen before it is scored.

:func:`resolve_tasks` turns a run's ``--task`` (a list of families, or ``all``) into the
families it covers, refusing any that is not a function task before anything is computed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

from interp.errors import IclscopeError
from interp.organism.language import Episode
from interp.prompts import PromptBatch, PromptBuilder
from interp.stats import wilson_ci
from interp.tasks.family import TaskFamily
from interp.tasks.natural import FUNCTION_PAIRS
from interp.tasks.suite import FUNCTION_FAMILIES, family_support, get_family

Pair = tuple[str, str]


def resolve_tasks(task: str, tokenizer=None) -> list[str]:
    """A comma-separated list of function families, or ``all``: every natural function family
    (the organism's when the tokenizer cannot build the natural ones)."""
    if task != "all":
        names = [t.strip() for t in task.split(",") if t.strip()]
        for name in names:
            fam = get_family(name)
            if fam.kind != "function":
                raise IclscopeError(
                    f"task vectors need function tasks (Q: x / A: y), not {name!r} ({fam.kind})",
                    fix="use e.g. --task nl_antonym, or --task all",
                )
        return names
    natural = [n for n in FUNCTION_FAMILIES if n.startswith("nl_")]
    if tokenizer is not None and family_support(get_family(natural[0]), tokenizer) is not None:
        return [n for n in FUNCTION_FAMILIES if not n.startswith("nl_")]
    return natural


def tasks_for(model: str, task: str) -> list[str]:
    """The families ``task`` names on ``model`` (a spec): ``all`` reads the model's tokenizer
    (only the tokenizer, not the weights) to choose between the natural and organism suites,
    so a run's manifest can list its tasks before the model is loaded."""
    if task != "all":
        return resolve_tasks(task)
    from transformers import AutoTokenizer

    from interp.models import resolve_spec

    return resolve_tasks(task, AutoTokenizer.from_pretrained(resolve_spec(model)[0]))


def task_pairs(family: TaskFamily, seed: int = 0, draw: int = 400) -> list[Pair]:
    """Every distinct ``(x, y)`` pair of a function family: the data file for natural families,
    the pairs seen in ``draw`` sampled episodes for the organism's generated ones."""
    if family.kind != "function":
        raise IclscopeError(
            f"task vectors need a function task (Q: x / A: y), not {family.name!r} ({family.kind})",
            fix="use a function family such as nl_antonym (see `iclscope tasks`)",
        )
    if family.name.removeprefix("nl_") in FUNCTION_PAIRS and family.source == "natural":
        return list(FUNCTION_PAIRS[family.name.removeprefix("nl_")])
    if family.source == "file":
        return _first_answers([row for split in family.sample.splits.values() for row in split])
    rng = random.Random(f"pairs:{family.name}:{seed}")
    seen: dict[str, str] = {}
    for _ in range(draw):
        ep = family.sample(rng, 1)
        for x, y in [*ep.demos, (ep.query, ep.answer)]:
            seen.setdefault(x, y)
    return sorted(seen.items())


def _first_answers(rows) -> list[Pair]:
    """One pair per input, with its first answer (a file may give an input several)."""
    seen: dict[str, str] = {}
    for x, y in rows:
        seen.setdefault(x, y)
    return list(seen.items())


@dataclass
class TaskSplit:
    """One task's items split into held-out test items and the rest (``train``)."""

    family: TaskFamily
    test: list[Pair]
    train: list[Pair]
    dev: list[Pair] | None = None
    """Items whose 0-shot prompts choose a layer: a task file's valid split where it has one
    (``None``: the train items)."""

    @classmethod
    def make(cls, task: str, n_test: int = 40, seed: int = 0, min_train: int = 10) -> TaskSplit:
        family = get_family(task)
        if family.source == "file":
            return cls.from_file_splits(family, n_test, seed, min_train)
        pairs = task_pairs(family, seed)
        random.Random(f"split:{task}:{seed}").shuffle(pairs)
        if len(pairs) < n_test + min_train:
            raise IclscopeError(
                f"{task} has {len(pairs)} items: too few for {n_test} test items and "
                f"{min_train} more for demonstrations, embeddings and training",
                fix=f"ask for at most {max(1, len(pairs) - min_train)} test items",
            )
        return cls(family, pairs[:n_test], pairs[n_test:])

    @classmethod
    def from_file_splits(
        cls, family: TaskFamily, n_test: int, seed: int, min_train: int
    ) -> TaskSplit:
        """A task file keeps its own split: test items from its test split, the rest from
        train (an input of the test items never appears among them)."""
        splits = family.sample.splits
        test = _first_answers(splits["test"])
        random.Random(f"split:{family.name}:{seed}").shuffle(test)
        test = test[:n_test]
        held = {x for x, _ in test}
        train = [p for p in _first_answers(splits["train"]) if p[0] not in held]
        if len(test) < n_test or len(train) < min_train:
            raise IclscopeError(
                f"{family.name} has {len(test)} test and {len(train)} train items: too few for "
                f"{n_test} test items and {min_train} more for demonstrations, embeddings and "
                "training",
                fix=f"ask for at most {len(test)} test items (--test-items)",
            )
        dev = [p for p in _first_answers(splits["valid"]) if p[0] not in held] or None
        return cls(family, test, train, dev)

    def episodes(
        self, queries: list[Pair], k: int, rng: random.Random, shuffle_labels: bool = False
    ) -> list[Episode]:
        """One episode per query with ``k`` demonstrations from the train items (never the
        query itself); ``shuffle_labels`` permutes the demonstrations' answers among them."""
        eps = []
        for x, y in queries:
            pool = [p for p in self.train if p[0] != x]
            if k > len(pool):
                raise IclscopeError(
                    f"{k} shots need {k} train items besides the query; "
                    f"{self.family.name} has {len(pool)}",
                    fix="use fewer shots or fewer test items",
                )
            demos = rng.sample(pool, k)
            if shuffle_labels and k > 1:
                ys = [d[1] for d in demos]
                rotated = ys[1:] + ys[:1]  # a derangement when the answers differ
                demos = [(d[0], r) for d, r in zip(demos, rotated)]
            eps.append(Episode(demos, x, y, labels=(), meta={"task": self.family.name}))
        return eps

    def build(
        self,
        builder: PromptBuilder,
        queries: list[Pair],
        k: int,
        seed: str,
        shuffle_labels: bool = False,
    ) -> PromptBatch:
        rng = random.Random(f"{self.family.name}:{seed}:{k}")
        eps = self.episodes(queries, k, rng, shuffle_labels)
        return builder.build(self.family.template, eps)

    def sample_train(self, n: int, seed: str) -> list[Pair]:
        """``n`` train items as queries (with repeats once every item has been used)."""
        rng = random.Random(f"{self.family.name}:{seed}")
        out: list[Pair] = []
        while len(out) < n:
            out += rng.sample(self.train, min(len(self.train), n - len(out)))
        return out


def wilson(hits: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of an accuracy ``hits / n`` (sound near 0 and 1) at normal
    quantile ``z`` (1.96: 95%), by :func:`interp.stats.wilson_ci`; NaN for no items."""
    if n == 0:
        return (math.nan, math.nan)
    return wilson_ci(int(round(hits)), n, level=2 * NormalDist().cdf(z) - 1)
