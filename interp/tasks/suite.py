"""The whole task suite: every family by name, batches of them, and what a tokenizer can build.

Two sources of families share one interface (:class:`TaskFamily`): the natural-language suite
for real models (:mod:`interp.tasks.natural`) and the organism's synthetic language
(:mod:`interp.organism.families`). A family builds annotated prompts for any tokenizer, or says
why it cannot (a label of several tokens, a word the vocabulary lacks).
"""

from __future__ import annotations

import random
from dataclasses import replace
from functools import lru_cache

from interp.errors import IclscopeError
from interp.organism import language as lang
from interp.organism.families import ORGANISM_FAMILIES
from interp.prompts import PromptBatch, PromptBuilder
from interp.tasks.family import TaskFamily
from interp.tasks.files.registry import FILE_FAMILIES, register_family  # noqa: F401
from interp.tasks.natural import CLASS_ITEMS, NATURAL_FAMILIES

assert not set(NATURAL_FAMILIES) & set(ORGANISM_FAMILIES), "family names must be unique"
TASK_FAMILIES: dict[str, TaskFamily] = {
    **{n: replace(f, source="natural") for n, f in NATURAL_FAMILIES.items()},
    **ORGANISM_FAMILIES,
}
FUNCTION_FAMILIES = [n for n, f in TASK_FAMILIES.items() if f.kind == "function"]


def families(source: str | None = None, kind: str | None = None) -> list[TaskFamily]:
    """Families of one source (``natural`` / ``organism``) and kind, in suite order."""
    return [
        f
        for f in TASK_FAMILIES.values()
        if (source is None or f.source == source) and (kind is None or f.kind == kind)
    ]


def get_family(name: str | TaskFamily) -> TaskFamily:
    if isinstance(name, TaskFamily):
        return name
    if name in FILE_FAMILIES:
        return FILE_FAMILIES[name]
    if name not in TASK_FAMILIES:
        from interp.models.registry import suggest

        looks_like_file = "/" in name or "." in name
        raise IclscopeError(
            f"unknown task {name!r}",
            fix="pass the path of an existing task file (.json, .jsonl, .csv, .tsv, .parquet "
            "or a folder)"
            if looks_like_file
            else f"{suggest(name, TASK_FAMILIES)}see `iclscope tasks` for the families",
        )
    return TASK_FAMILIES[name]


def label_mode(family: str | TaskFamily) -> str:
    """How prompts of ``family`` mark labels: ``single`` (each label one token, refused
    otherwise) for the built-in families, ``first`` for a file's, whose labels may be several
    tokens: patching and the circuit then read each label's first token."""
    return "first" if get_family(family).source == "file" else "single"


def require_kind(task: str, kind: str, analysis: str, fix: str) -> TaskFamily:
    """The family ``task``, refused unless it is of ``kind``: an analysis names itself
    (``analysis``) and the families to use instead (``fix``)."""
    family = get_family(task)
    if family.kind != kind:
        raise IclscopeError(
            f"{analysis} runs on {kind} families, not {task!r} ({family.kind})", fix=fix
        )
    return family


def sample_episodes(family: str, n: int, k: int | None = None, seed: int = 0) -> list:
    """``n`` episodes of one family with ``k`` shots (documents, pairs), reproducibly."""
    fam = get_family(family)
    k = fam.default_k if k is None else k
    rng = random.Random(f"{family}:{k}:{seed}")
    return [fam.sample(rng, k) for _ in range(n)]


def build_family_batch(
    builder: PromptBuilder, family: str, n: int, k: int | None = None, seed: int = 0
) -> PromptBatch:
    """``n`` prompts of one family with ``k`` shots (or documents / pairs), reproducibly."""
    return builder.build(get_family(family).template, sample_episodes(family, n, k, seed))


def family_support(family: TaskFamily, tokenizer) -> str | None:
    """``None`` when ``tokenizer`` can build this family's prompts, else the reason it cannot
    (tried on a few prompts of every label: each label must be one token, no word unknown).
    A file family's answers may be longer: it is scored by their first token or exactly."""
    builder = PromptBuilder(tokenizer, labels="first" if family.source == "file" else "single")
    rng = random.Random(f"support:{family.name}")
    try:
        batch = builder.build(family.template, [family.sample(rng, 4) for _ in range(8)])
    except IclscopeError as err:
        return err.problem
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and bool((batch.tokens[batch.attention_mask.bool()] == unk).any()):
        return "some of its words are not in this tokenizer's vocabulary (unknown tokens)"
    return None


def own_suite(tokenizer) -> str:
    """The suite a model is evaluated on: ``natural`` where its tokenizer builds the English
    function families (real models), else ``organism``. The organism's word language is
    synthetic: a real tokenizer may build some of its prompts, but they measure nothing."""
    natural = families(source="natural", kind="function")
    return "natural" if all(family_support(f, tokenizer) is None for f in natural) else "organism"


def default_family(tokenizer, natural: str, organism: str) -> str:
    """``natural`` where this tokenizer builds it (real models), else the organism's family."""
    return natural if family_support(get_family(natural), tokenizer) is None else organism


# ---------------------------------------------------------------------------------------------
# Clean/corrupted pairs for patching: the corrupted query comes from another class and has the
# same number of tokens, so every annotated position means the same in both prompts.


def _corrupt_organism(ep: lang.Episode, rng: random.Random) -> lang.Episode:
    """Organism: the same demonstrations with a query from another class, word count kept."""
    cls = rng.choice([c for c in ep.meta["label_map"] if c != ep.meta["class"]])
    words = [
        rng.choice(lang.CLASS_WORDS[cls]) if w in lang.WORD_CLASS else w for w in ep.query.split()
    ]
    return _with_query(ep, " ".join(words), cls)


def _with_query(ep: lang.Episode, query: str, cls: str) -> lang.Episode:
    names = ep.meta["label_map"]
    return lang.Episode(ep.demos, query, names[cls], ep.labels, meta={**ep.meta, "class": cls})


@lru_cache(maxsize=32)
def _items_by_length(
    family: str, tokenizer, version: str = ""
) -> dict[tuple[str, int], tuple[str, ...]]:
    """Natural family items grouped by (class, token count in the template's query slot);
    ``version`` (a file family's SHA-256 and template) keeps a reloaded file from a stale
    cache."""
    fam = get_family(family)
    head = fam.template.demo.split("{x}")[0]
    mid = fam.template.demo.split("{x}")[1].split("{y}")[0].rstrip()
    groups: dict[tuple[str, int], list[str]] = {}
    # natural classification families share their items: nl_<base>_{natural,arbitrary}
    base = family.removeprefix("nl_").rsplit("_", 1)[0]
    for cls, items in (fam.items or CLASS_ITEMS[base]).items():
        texts = [head + item + mid for item in items]
        for item, ids in zip(items, tokenizer(texts, add_special_tokens=False)["input_ids"]):
            groups.setdefault((cls, len(ids)), []).append(item)
    return {key: tuple(v) for key, v in groups.items()}


def _corrupt_natural(ep: lang.Episode, rng: random.Random, family: str, tokenizer):
    fam = get_family(family)
    head = fam.template.demo.split("{x}")[0]
    mid = fam.template.demo.split("{x}")[1].split("{y}")[0].rstrip()
    length = len(tokenizer(head + ep.query + mid, add_special_tokens=False)["input_ids"])
    origin = fam.origin
    groups = _items_by_length(
        family, tokenizer, f"{origin.sha256}{origin.template}" if origin else ""
    )
    demo_items = {x for x, _ in ep.demos}
    others = [c for c in ep.meta["label_map"] if c != ep.meta["class"]]
    rng.shuffle(others)
    for cls in others:
        pool = [x for x in groups.get((cls, length), ()) if x not in demo_items]
        if pool:
            return _with_query(ep, rng.choice(pool), cls)
    return None


def build_pair_batches(
    builder: PromptBuilder, family: str, n: int, k: int, seed: int = 0
) -> tuple[PromptBatch, PromptBatch]:
    """Clean and corrupted batches of a classification family for patching: the corrupted
    query comes from another class (same token count), so ``logit_diff`` measures what the
    query carries. Clean episodes whose query has no same-length counterpart are redrawn."""
    fam = get_family(family)
    if fam.kind != "classification":
        names = ", ".join(f.name for f in families(kind="classification"))
        raise IclscopeError(
            f"patching pairs are built for classification families, not {family!r}",
            fix=f"use one of: {names}",
        )
    rng = random.Random(f"pairs:{family}:{k}:{seed}")
    corrupt = (
        _corrupt_organism
        if fam.source == "organism"
        else lambda ep, r: _corrupt_natural(ep, r, family, builder.tokenizer)
    )
    # all clean episodes first, then their corruptions: the draw order of earlier releases
    drawn = [fam.sample(rng, k) for _ in range(n)]
    clean, corrupted = [], []
    for _ in range(50 * n):
        if not drawn or len(clean) == n:
            break
        ep = drawn.pop(0)
        bad = corrupt(ep, rng) if len(ep.meta["label_map"]) > 1 else None
        if bad is not None:
            clean.append(ep)
            corrupted.append(bad)
        if not drawn and len(clean) < n:  # a query without a same-length partner: draw again
            drawn.append(fam.sample(rng, k))
    if len(clean) < n:
        raise IclscopeError(
            f"could only pair {len(clean)} of {n} prompts of {family!r} with a same-length "
            "query of another class under this tokenizer",
            fix="ask for fewer prompts, or use a family with more items per class",
        )
    return builder.build(fam.template, clean), builder.build(fam.template, corrupted)
