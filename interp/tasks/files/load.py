"""A researcher's own task as a :class:`~interp.tasks.family.TaskFamily`: from a file or folder
(:func:`from_file`) or from pairs in memory (:func:`from_pairs`).

The family behaves as a built-in one does: every analysis samples episodes from it and builds
annotated prompts with its template. What it adds is where it came from (:class:`TaskOrigin`:
the path, size and SHA-256, the columns, the split and the data-quality counts), which a run
writes into its manifest.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from interp.errors import IclscopeError
from interp.tasks.family import TaskFamily
from interp.tasks.files import columns as cols
from interp.tasks.files.read import RawTask, read_task
from interp.tasks.files.sampling import DOC_IDS, ClassSampler, PairSampler, RankingSampler
from interp.templates import RANKING_TEMPLATE, Template

FUNCTION_FORMAT = "Q: {x}\nA: {y}"
FUNCTION_SEPARATOR = "\n\n"
CLASSIFICATION_FORMAT = "sentence: {x} {prefix} {y}"
CLASSIFICATION_SEPARATOR = "\n"
LABEL_PREFIX = "sentiment:"
SPLIT_SHARES = {"train": 0.7, "valid": 0.1, "test": 0.2}
"""The seeded split of a file without splits: 70 % demonstrations, 10 % for choosing layers
and heads, 20 % queries."""


@dataclass(frozen=True)
class TaskFileOptions:
    """How to read a task file: the command line's ``--columns``, ``--kind``, ``--template``,
    ``--separator`` and ``--label-prefix``, and the seed of the split made for a file
    without one. ``None`` means: infer it, or use the kind's default."""

    columns: dict[str, str] = field(default_factory=dict)
    kind: str | None = None
    template: str | None = None
    separator: str | None = None
    label_prefix: str | None = None
    split_seed: int = 0
    name: str | None = None
    """The family's name; the file's stem when ``None`` (``antonym`` for ``antonym.json``)."""


@dataclass(frozen=True)
class TaskOrigin:
    """Where a family came from, as its run's manifest records it."""

    path: str
    format: str
    size: int
    sha256: str
    columns: dict[str, str]
    kind: str
    kind_inferred: bool
    template: str
    splits: dict[str, int]
    split_made: bool
    split_seed: int
    quality: dict[str, int]

    def to_json(self) -> dict:
        return asdict(self)


def unescape(text: str | None) -> str | None:
    """``\\n`` and ``\\t`` typed on a command line as the characters they name."""
    if text is None:
        return None
    return text.replace("\\n", "\n").replace("\\t", "\t")


def demo_format(kind: str, options: TaskFileOptions) -> str:
    """The demonstration format (``{x}``, ``{y}`` and what follows a demonstration) of a
    task of ``kind`` under these options."""
    if kind == "ranking":
        return RANKING_TEMPLATE.demo
    template = unescape(options.template)
    separator = unescape(options.separator)
    if template is None:
        if kind == "classification":
            prefix = options.label_prefix if options.label_prefix is not None else LABEL_PREFIX
            template = CLASSIFICATION_FORMAT.replace("{prefix}", prefix.strip())
            separator = CLASSIFICATION_SEPARATOR if separator is None else separator
        else:
            template, separator = (
                FUNCTION_FORMAT,
                (FUNCTION_SEPARATOR if separator is None else separator),
            )
    elif separator is None:  # a template that ends its own demonstration needs no separator
        separator = "" if template.endswith("\n") else "\n"
    return template + separator


def make_template(name: str, kind: str, options: TaskFileOptions) -> Template:
    """The family's :class:`Template`; one whose roles cannot be found is refused with the
    reason (``{y}`` before ``{x}``, nothing between them to end the query on, a slot missing)."""
    if kind == "ranking":
        return RANKING_TEMPLATE
    return Template(name, demo_format(kind, options), kind)


def _split(pairs: list, seed: int) -> dict[str, list]:
    """A seeded 70/10/20 split; every split of a file of 3 rows or more gets one."""
    order = list(range(len(pairs)))
    random.Random(f"split:{seed}").shuffle(order)
    n_test = max(1, round(len(pairs) * SPLIT_SHARES["test"]))
    n_valid = max(1, round(len(pairs) * SPLIT_SHARES["valid"])) if len(pairs) >= 3 else 0
    test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    return {
        name: [pairs[i] for i in sorted(ix)]
        for name, ix in (("train", train), ("valid", valid), ("test", test))
    }


def _rows_by_split(raw: RawTask, roles: dict[str, str], quality: cols.Quality) -> dict[str, list]:
    out = {}
    for split, table in raw.splits.items():
        where = f"{raw.path}" if split == "all" else f"{raw.path} ({split})"
        if "query" in roles:
            out[split] = cols.ranking_rows(table, roles, quality, where)
        else:
            out[split] = cols.pair_rows(table, roles, raw.class_names, quality)
    return out


def family_from_raw(raw: RawTask, options: TaskFileOptions) -> TaskFamily:
    """The family a read file describes, under ``options``."""
    name = options.name or raw.path.stem
    roles = cols.find_columns(raw.columns, options.columns, str(raw.path))
    quality = cols.Quality()
    rows = _rows_by_split(raw, roles, quality)
    every = [row for split_rows in rows.values() for row in split_rows]
    if not every:
        raise IclscopeError(
            f"{raw.path} has no usable rows (all {quality.rows} have an empty field)",
            fix="fill in the input and answer of each row",
        )
    ranking = "query" in roles
    if not ranking:
        cols.count_repeats(every, quality)
    split_made = set(rows) == {"all"}
    if split_made:
        rows = _split(rows["all"], options.split_seed)
    elif "train" not in rows:
        raise IclscopeError(
            f"{raw.path} has splits {', '.join(rows)} but no train split for the demonstrations",
            fix="add a train file (or a train split), or pass a single file",
        )
    for split in ("valid", "test"):
        rows.setdefault(split, [])
    inferred = options.kind is None
    kind = (
        cols.infer_kind(roles, [y for _, y in every] if not ranking else [])
        if inferred
        else options.kind
    )
    if kind not in cols.KINDS:
        raise IclscopeError(f"--kind {kind!r} is not one of {', '.join(cols.KINDS)}")
    if (kind == "ranking") != ranking:
        raise IclscopeError(
            f"{raw.path} has {'ranking' if ranking else 'input/answer'} columns, so it cannot "
            f"be read as a {kind} task",
            fix="drop --kind, or name the right columns with --columns",
        )
    template = make_template(name, kind, options)
    splits = {s: tuple(r) for s, r in rows.items()}
    if kind == "ranking":
        sampler = RankingSampler(name, splits)
        labels, items = DOC_IDS, None
        sizes = sorted(len(r.documents) for r in every)
        default_k = min(len(DOC_IDS), sizes[len(sizes) // 2])
    elif kind == "classification":
        classes = tuple(sorted({y for _, y in every}))
        sampler = ClassSampler(name, splits, classes=classes)
        labels, default_k = classes, 8
        items = {c: tuple(xs) for c, xs in sampler.by_class("test").items()}
    else:
        sampler, labels, items, default_k = PairSampler(name, splits), (), None, 8
    origin = TaskOrigin(
        path=str(raw.path),
        format=raw.format,
        size=raw.size,
        sha256=raw.sha256,
        columns=roles,
        kind=kind,
        kind_inferred=inferred,
        template=template.demo,
        splits={s: len(r) for s, r in splits.items()},
        split_made=split_made,
        split_seed=options.split_seed,
        quality=asdict(quality),
    )
    about = f"{raw.path.name}: {quality.rows} rows, {kind}" + (
        f" over {len(labels)} labels" if kind == "classification" else ""
    )
    return TaskFamily(
        name,
        kind,
        template,
        labels,
        sampler,
        about,
        default_k,
        source="file",
        origin=origin,
        items=items,
    )


def from_file(path: str | Path, options: TaskFileOptions | None = None, **fields) -> TaskFamily:
    """A task family from a file or folder (see the "Bring your own task" page of the docs).

    ``fields`` are :class:`TaskFileOptions` fields, e.g. ``from_file("antonym.json",
    kind="function", template="Q: {x}\\nA: {y}")``.
    """
    options = replace(options or TaskFileOptions(), **fields)
    return family_from_raw(read_task(path), options)


def from_pairs(
    pairs, name: str = "pairs", options: TaskFileOptions | None = None, **fields
) -> TaskFamily:
    """A task family from ``(input, answer)`` pairs (or dicts with the columns of a file)
    held in memory; split, inferred and templated as a file would be."""
    import hashlib
    import json

    import pandas as pd

    pairs = list(pairs)
    if not pairs:
        raise IclscopeError("from_pairs got no pairs", fix="pass (input, answer) pairs")
    table = (
        pd.DataFrame.from_records(pairs)
        if isinstance(pairs[0], dict)
        else pd.DataFrame(pairs, columns=["input", "output"])
    )
    blob = json.dumps(table.to_dict("records"), default=str).encode()
    raw = RawTask(Path(name), "pairs", {"all": table}, len(blob), hashlib.sha256(blob).hexdigest())
    options = replace(options or TaskFileOptions(), **fields)
    return family_from_raw(raw, replace(options, name=options.name or name))
