"""Natural-language ICL task families for real pretrained models (e.g. SmolLM2-135M-Instruct).

The organism's synthetic language (``interp.organism.language``) is built so that every
mechanism exists by construction; a pretrained model must instead be probed with tasks it can
actually solve in context. This suite mirrors the organism's four kinds with English data
written for the project (``data/``, see ``data/DATA_LICENSE.md``):

* classification: sentiment (2 classes), topic (4) and kind of thing (3), each with natural
  label words (the class names) and with arbitrary per-prompt label words, so the class ->
  label mapping of the arbitrary variant exists only in the demonstrations;
* function tasks (``Q: x`` / ``A: y``) such as country -> capital or verb -> past tense. An
  answer is scored by the first token of `` answer``; every answer in the data is one SmolLM2
  token, so that score is exact and ``PromptBuilder(labels="single")`` builds them;
* ranking over ten one-sentence documents with one-digit IDs (single tokens after ``[``), the
  query being either the one document's key word (lexical) or a question it answers (semantic);
* key-value retrieval over English words (``apple: river``), ``k`` being the number of pairs.

On SmolLM2-135M-Instruct (64 prompts a cell) ten function families go from <= 0.03 at 0 shots
to >= 0.66 at 8, arbitrary-label sentiment from 0.45 to 0.66, while ranking and key-value
retrieval stay at chance: those two are for larger models, or for attention analyses that do
not need a correct answer.

Episodes have the same shape as the organism's (``meta`` included), so the suite's builders,
patching pairs and metrics (``interp.tasks.suite``) apply unchanged.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from functools import partial
from pathlib import Path

from interp.errors import IclscopeError
from interp.organism.language import Episode
from interp.prompts import FUNCTION_TEMPLATE, KV_TEMPLATE, RANKING_TEMPLATE, Template
from interp.tasks.family import TaskFamily

DATA_DIR = Path(__file__).parent / "data"
DOC_IDS: tuple[str, ...] = tuple(str(i) for i in range(10))
"""Ranking document IDs: SmolLM2 splits numbers into digits, so only 0-9 are one token."""


def _load(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


_CLASSIFICATION = _load("classification.json")
_FUNCTIONS = _load("functions.json")
_RANKING: list[dict[str, str]] = _load("ranking.json")["entries"]
KV_WORDS: tuple[str, ...] = tuple(_load("kv_words.json")["words"])
"""Words for key-value prompts, each one token after a space for SmolLM2 (values are scored
by their first token, so a one-token value is scored exactly)."""

ARBITRARY_LABELS: tuple[str, ...] = tuple(_CLASSIFICATION["arbitrary_labels"])
"""Label words with no meaning for any family, one token each; a prompt draws its own, so no
word is tied to a class across prompts (a fixed pair of words did worse on SmolLM2)."""
CLASS_ITEMS: dict[str, dict[str, tuple[str, ...]]] = {
    name: {cls: tuple(items) for cls, items in fam["classes"].items()}
    for name, fam in _CLASSIFICATION["families"].items()
}
"""Per classification family (``sentiment``, ``topic``, ``kind``): class -> its inputs."""
FUNCTION_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    name: tuple((x, y) for x, y in fam["pairs"]) for name, fam in _FUNCTIONS.items()
}

KV_PAIRS_FOR_TOKENS: dict[int, int] = {256: 55, 512: 110, 1024: 221, 2048: 442}
"""Key-value pairs giving prompts of about that many SmolLM2 tokens (``kv_pairs_for_tokens``
computes it for any tokenizer)."""


# ---------------------------------------------------------------------------------------------
# Sampling


def _draw_items(rng: random.Random, items: dict[str, tuple[str, ...]], need: Counter) -> dict:
    """``need[c]`` distinct inputs of each class c: no input appears twice in one prompt, so
    the query is never answered by copying an identical demonstration."""
    for cls, n in need.items():
        if n > len(items[cls]):
            raise IclscopeError(f"class {cls!r} has {len(items[cls])} inputs, {n} are needed")
    return {cls: rng.sample(items[cls], n) for cls, n in need.items()}


def sample_classification(
    rng: random.Random, k: int, family: str, arbitrary: bool, n_classes: int | None = None
) -> Episode:
    """k demonstrations cycling over the prompt's classes (balanced: every class is shown
    when k >= n_classes), shuffled. ``arbitrary`` draws the label words per prompt from
    ``ARBITRARY_LABELS``, so 0-shot is chance and the mapping must be read from the demos."""
    items = CLASS_ITEMS[family]
    classes = rng.sample(list(items), n_classes or len(items))
    words = rng.sample(ARBITRARY_LABELS, len(classes)) if arbitrary else classes
    names = dict(zip(classes, words))
    demo_classes = [classes[i % len(classes)] for i in range(k)]
    rng.shuffle(demo_classes)
    q_cls = rng.choice(classes)
    drawn = _draw_items(rng, items, Counter([*demo_classes, q_cls]))
    query = drawn[q_cls].pop()
    demos = [(drawn[c].pop(), names[c]) for c in demo_classes]
    return Episode(
        demos,
        query,
        names[q_cls],
        tuple(names[c] for c in classes),
        meta={"class": q_cls, "label_map": names},
    )


def sample_function(rng: random.Random, k: int, task: str) -> Episode:
    """k demonstrations and a query, k + 1 distinct pairs of the task."""
    *demos, (query, answer) = rng.sample(FUNCTION_PAIRS[task], k + 1)
    return Episode(list(demos), query, answer, labels=(), meta={"task": task})


def sample_ranking(rng: random.Random, n_docs: int, semantic: bool) -> Episode:
    """n_docs one-sentence documents with distinct one-digit IDs. Each document of the pool has
    a key word found in no other document and a question only it answers; the query is the
    gold document's key word (lexical) or its question (semantic, no key word shared)."""
    if not 1 <= n_docs <= len(DOC_IDS):
        raise IclscopeError(f"ranking prompts hold 1 to {len(DOC_IDS)} documents, not {n_docs}")
    entries = rng.sample(_RANKING, n_docs)
    ids = rng.sample(DOC_IDS, n_docs)
    gold = rng.randrange(n_docs)
    query = entries[gold]["question" if semantic else "keyword"]
    docs = [(doc_id, e["doc"]) for doc_id, e in zip(ids, entries)]
    return Episode([], query, ids[gold], labels=tuple(ids), docs=docs, meta={"gold": gold})


def sample_kv(rng: random.Random, n_pairs: int) -> Episode:
    """n_pairs lines ``key: value`` with distinct word keys; values may repeat across lines
    but never equal their own key (that would be answerable by copying the query)."""
    keys = rng.sample(KV_WORDS, n_pairs)
    pairs = [(key, next(v for v in rng.sample(KV_WORDS, 2) if v != key)) for key in keys]
    qi = rng.randrange(n_pairs)
    return Episode([], pairs[qi][0], pairs[qi][1], labels=(), docs=pairs, meta={"index": qi})


def kv_pairs_for_tokens(tokenizer, n_tokens: int, seed: int = 0) -> int:
    """How many key-value pairs make a prompt of about ``n_tokens`` tokens for ``tokenizer``,
    from the mean token count of one rendered line over 256 sampled lines."""
    ep = sample_kv(random.Random(seed), 256)
    text = "".join(f"{k}: {v}\n" for k, v in ep.docs)
    per_line = len(tokenizer(text, add_special_tokens=False)["input_ids"]) / len(ep.docs)
    return max(1, min(len(KV_WORDS), round(n_tokens / per_line)))


# ---------------------------------------------------------------------------------------------
# Families


def _classification_families() -> list[TaskFamily]:
    fams = []
    for name, spec in _CLASSIFICATION["families"].items():
        template = Template(f"nl_{name}", spec["demo"], "classification")
        for arbitrary in (False, True):
            variant = "arbitrary" if arbitrary else "natural"
            labels = ARBITRARY_LABELS if arbitrary else tuple(spec["classes"])
            how = (
                "label words drawn per prompt from a pool unrelated to the task"
                if arbitrary
                else "the class names as label words"
            )
            fams.append(
                TaskFamily(
                    f"nl_{name}_{variant}",
                    "classification",
                    template,
                    labels,
                    partial(sample_classification, family=name, arbitrary=arbitrary),
                    f"{spec['description']}; {how}",
                    default_k=8,
                )
            )
    return fams


def _function_families() -> list[TaskFamily]:
    return [
        TaskFamily(
            f"nl_{name}",
            "function",
            FUNCTION_TEMPLATE,
            (),
            partial(sample_function, task=name),
            f"{spec['description']} (scored by the first token of ' answer'; build with "
            "labels='first')",
            default_k=8,
        )
        for name, spec in _FUNCTIONS.items()
    ]


def _families() -> dict[str, TaskFamily]:
    fams = [*_classification_families(), *_function_families()]
    for semantic in (False, True):
        what = "a question only it answers" if semantic else "a key word found only in it"
        fams.append(
            TaskFamily(
                f"nl_ranking_{'semantic' if semantic else 'lexical'}",
                "ranking",
                RANKING_TEMPLATE,
                DOC_IDS,
                partial(sample_ranking, semantic=semantic),
                f"name the ID of the one document of ten matching the query, {what}",
                default_k=10,
            )
        )
    fams.append(
        TaskFamily(
            "nl_kv_words",
            "retrieval",
            KV_TEMPLATE,
            (),
            sample_kv,
            "recall the word value of a word key from 'key: value' lines; k pairs (55 make ~256 "
            "SmolLM2 tokens, see KV_PAIRS_FOR_TOKENS)",
            default_k=KV_PAIRS_FOR_TOKENS[256],
        )
    )
    return {f.name: f for f in fams}


NATURAL_FAMILIES: dict[str, TaskFamily] = _families()
