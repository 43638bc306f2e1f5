"""The synthetic language of the ICL model organism.

Every mechanism iclscope studies must really exist in the organism, so its language is built
to need them:

* four latent classes of content words, named by semantic label words, so the input of a
  classification prompt must be *summarized* into a class before a label can be chosen;
* arbitrary label words assigned per prompt, so the mapping class -> label exists only in the
  demonstrations (0-shot is chance, k-shot needs retrieve-and-copy);
* nine function tasks, {copy, class, index} x {first, middle, last} word, all over the same
  three-word inputs (one word from each of three classes, so every demonstration tells the
  positions apart): a 0-shot query is ambiguous and the task must be read off the demos;
* ranking prompts whose single relevant document shares a word with the query;
* long key-value contexts, which need an induction-style lookup.

Functions follow from class structure rather than memorised tables (see ORGANISM_NOTES.md:
table functions stall on 2 CPU cores).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

CLASS_WORDS: dict[str, tuple[str, ...]] = {
    "animal": tuple(
        "cat dog horse cow sheep goat pig mouse lion tiger bear wolf fox deer rabbit "
        "monkey camel zebra otter seal whale shark eagle owl".split()
    ),
    "color": tuple(
        "red blue green yellow orange purple pink brown black white gray silver gold violet "
        "indigo teal cyan magenta beige maroon navy olive coral amber".split()
    ),
    "food": tuple(
        "bread rice pasta cheese apple banana grape lemon cherry peach pear plum mango melon "
        "carrot potato tomato onion garlic pepper honey butter sugar salt".split()
    ),
    "tool": tuple(
        "hammer saw drill wrench pliers chisel shovel rake hoe axe knife scissors ladder "
        "bucket brush rope nail screw bolt clamp file level tape glue".split()
    ),
}
CLASS_NAMES: tuple[str, ...] = tuple(CLASS_WORDS)
ARBITRARY_LABELS: tuple[str, ...] = tuple(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()
)
FILLER_WORDS: tuple[str, ...] = tuple("the a very so quite really and some".split())
NUMBER_WORDS: tuple[str, ...] = tuple(str(i) for i in range(32))
KEY_WORDS: tuple[str, ...] = tuple(f"k{i}" for i in range(80))
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<s>", "</s>")
STRUCTURE_TOKENS: tuple[str, ...] = (
    "sentence",
    "sentiment",
    ":",
    "\n",
    "Q",
    "A",
    "query",
    "ID",
    "|",
    "CONTENT",
    "END",
    "Final",
    "Answer",
    "[",
    "]",
)

WORD_CLASS: dict[str, str] = {w: c for c, ws in CLASS_WORDS.items() for w in ws}
CONTENT_WORDS: tuple[str, ...] = tuple(WORD_CLASS)


def vocabulary() -> list[str]:
    """All tokens of the language, specials first (their ids are fixed: pad 0, unk 1, bos 2)."""
    words = [*SPECIAL_TOKENS, *STRUCTURE_TOKENS, *CONTENT_WORDS, *CLASS_NAMES, *ARBITRARY_LABELS]
    words += [*FILLER_WORDS, *NUMBER_WORDS, *KEY_WORDS]
    assert len(words) == len(set(words)), "vocabulary words must be unique"
    return words


def class_index(word: str) -> str:
    """The number word of a content word's class (animal 0, color 1, food 2, tool 3): a
    four-entry map, where a word-to-word table would first have to be memorised."""
    return NUMBER_WORDS[CLASS_NAMES.index(WORD_CLASS[word])]


FunctionOp = Literal["copy", "class", "index"]
FUNCTION_POSITIONS = {"first": 0, "middle": 1, "last": 2}
FUNCTION_OPS: tuple[FunctionOp, ...] = ("copy", "class", "index")


def apply_function(op: str, position: str, words: list[str]) -> str:
    word = words[FUNCTION_POSITIONS[position]]
    if op == "copy":
        return word
    if op == "class":
        return WORD_CLASS[word]
    return class_index(word)


# ---------------------------------------------------------------------------------------------
# Episodes: what a task family samples before a template renders it into tokens.


@dataclass
class Episode:
    """One few-shot problem: demonstrations, a query, its answer and the candidate labels.

    For ranking, ``docs`` holds (id, content) pairs and ``query`` the query word; for key-value
    retrieval ``docs`` holds the (key, value) pairs and ``query`` the key asked for.
    """

    demos: list[tuple[str, str]]
    query: str
    answer: str
    labels: tuple[str, ...]
    docs: list[tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def _class_input(rng: random.Random, cls: str) -> str:
    n = rng.randint(2, 4)
    words = rng.sample(CLASS_WORDS[cls], n)
    if rng.random() < 0.25:
        words.insert(rng.randrange(n + 1), rng.choice(FILLER_WORDS))
    return " ".join(words)


def sample_classification(
    rng: random.Random, k: int, arbitrary: bool, n_classes: int | None = None
) -> Episode:
    """k demonstrations over 2-4 classes; the query's class always appears among the demos
    when k >= n_classes (balanced demos: a class absent from context cannot be answered)."""
    n_cls = n_classes or rng.randint(2, 4)
    classes = rng.sample(CLASS_NAMES, n_cls)
    if arbitrary:
        names = dict(zip(classes, rng.sample(ARBITRARY_LABELS, n_cls)))
    else:
        names = {c: c for c in classes}
    demo_classes = list(classes[:k]) + [rng.choice(classes) for _ in range(k - min(k, n_cls))]
    rng.shuffle(demo_classes)
    demos = [(_class_input(rng, c), names[c]) for c in demo_classes]
    q_cls = rng.choice(classes)
    return Episode(
        demos,
        _class_input(rng, q_cls),
        names[q_cls],
        tuple(names[c] for c in classes),
        meta={"class": q_cls, "label_map": names},
    )


def sample_function(rng: random.Random, k: int, op: str, position: str) -> Episode:
    def item() -> tuple[str, str]:
        words = [rng.choice(CLASS_WORDS[c]) for c in rng.sample(CLASS_NAMES, 3)]
        return " ".join(words), apply_function(op, position, words)

    demos = [item() for _ in range(k)]
    query, answer = item()
    return Episode(demos, query, answer, labels=(), meta={"op": op, "position": position})


def sample_ranking(rng: random.Random, n_docs: int = 10) -> Episode:
    """n_docs blocks with distinct random IDs; exactly one contains the query word."""
    query = rng.choice(CONTENT_WORDS)
    ids = rng.sample(NUMBER_WORDS, n_docs)
    gold = rng.randrange(n_docs)
    others = [w for w in CONTENT_WORDS if w != query]
    docs = []
    for d, doc_id in enumerate(ids):
        words = rng.sample(others, rng.randint(2, 4))
        if d == gold:
            words[rng.randrange(len(words))] = query
        docs.append((doc_id, " ".join(words)))
    return Episode([], query, ids[gold], labels=tuple(ids), docs=docs, meta={"gold": gold})


def sample_kv(rng: random.Random, n_pairs: int) -> Episode:
    keys = rng.sample(KEY_WORDS, n_pairs)
    pairs = [(k, rng.choice(CONTENT_WORDS)) for k in keys]
    qi = rng.randrange(n_pairs)
    return Episode([], pairs[qi][0], pairs[qi][1], labels=(), docs=pairs, meta={"index": qi})
