"""Which columns hold the input and the answer, what kind of task a file is, and its rows.

A file's columns are found by the names the field's datasets use (``input``/``output`` in the
Function Vectors files, ``text``/``label`` and ``sentence``/``label`` in classification sets,
``question``/``answer``, and ``query``/``documents``/``answer_ids`` for BlockRank's ranking
data); ``--columns x=COL,y=COL`` names them when the file uses others. The kind follows from
the columns and from how many distinct answers there are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from interp.errors import IclscopeError

PAIR_ALIASES: tuple[tuple[str, str], ...] = (
    ("input", "output"),
    ("text", "label"),
    ("sentence", "label"),
    ("question", "answer"),
)
RANKING_ROLES = ("query", "documents", "answer_ids")
ROLES = ("x", "y", *RANKING_ROLES)
MAX_CLASSES = 16
"""A file with at most this many distinct answers (each seen at least 4 times on average) is
read as classification: its answers are labels, scored among themselves."""
KINDS = ("function", "classification", "ranking")


def parse_columns(text: str | None) -> dict[str, str]:
    """``x=COL,y=COL`` (or ``query=``, ``documents=``, ``answer_ids=``) as a role -> column map."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        role, sep, column = part.partition("=")
        role, column = role.strip(), column.strip()
        if not sep or role not in ROLES or not column:
            raise IclscopeError(
                f"--columns {text!r}: {part!r} is not ROLE=COLUMN with ROLE one of "
                f"{', '.join(ROLES)}",
                fix="write for example --columns x=review,y=stars",
            )
        out[role] = column
    return out


def find_columns(found: list[str], override: dict[str, str], where: str) -> dict[str, str]:
    """The role -> column map for a file with columns ``found``: the override's roles, the
    rest from the first alias set the file has."""
    missing = [c for c in override.values() if c not in found]
    if missing:
        raise IclscopeError(
            f"{where} has no column {', '.join(map(repr, missing))} (its columns: "
            f"{', '.join(found)})",
            fix="name columns that exist in --columns",
        )
    if any(role in override for role in RANKING_ROLES) or all(r in found for r in RANKING_ROLES):
        roles = {r: override.get(r, r) for r in RANKING_ROLES}
        if all(c in found for c in roles.values()):
            return roles
    for x, y in PAIR_ALIASES:
        roles = {"x": override.get("x", x), "y": override.get("y", y)}
        if roles["x"] in found and roles["y"] in found:
            return roles
    raise IclscopeError(
        f"{where} has no input and answer columns iclscope knows (its columns: {', '.join(found)})",
        fix="name them, e.g. --columns x=review,y=stars (known pairs: "
        + "; ".join(f"{x}/{y}" for x, y in PAIR_ALIASES)
        + "; ranking: query/documents/answer_ids)",
    )


def infer_kind(roles: dict[str, str], outputs: list[str]) -> str:
    """``ranking`` for ranking columns; ``classification`` for a few distinct answers, each
    seen several times; ``function`` otherwise."""
    if "query" in roles:
        return "ranking"
    distinct = len(set(outputs))
    classes = 2 <= distinct <= MAX_CLASSES and len(outputs) >= 4 * distinct
    return "classification" if classes else "function"


def as_text(value, names: list[str] | None = None) -> str | None:
    """A cell as text: ``None`` for a missing value, class names for integer labels, whole
    numbers without ``.0`` (pandas reads an integer column with gaps as floats)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if names is not None and isinstance(value, int | float) and 0 <= int(value) < len(names):
        return names[int(value)]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass
class Quality:
    """Counts a report shows instead of one warning per row."""

    rows: int = 0
    empty: int = 0
    duplicates: int = 0
    conflicting_inputs: int = 0
    """Inputs that appear with more than one answer."""

    def lines(self) -> list[str]:
        out = []
        if self.empty:
            out.append(f"{self.empty} rows with an empty field were left out")
        if self.duplicates:
            out.append(f"{self.duplicates} rows repeat an earlier row")
        if self.conflicting_inputs:
            out.append(f"{self.conflicting_inputs} inputs appear with different answers")
        return out


def pair_rows(table, roles: dict[str, str], class_names, quality: Quality):
    """The ``(input, answer)`` pairs of one split; rows with an empty field are counted and
    left out (a prompt cannot show them)."""
    xs = [as_text(v, class_names.get(roles["x"])) for v in table[roles["x"]].tolist()]
    ys = [as_text(v, class_names.get(roles["y"])) for v in table[roles["y"]].tolist()]
    pairs = []
    for x, y in zip(xs, ys):
        if not x or not y:
            quality.empty += 1
        else:
            pairs.append((x, y))
    quality.rows += len(xs)
    return pairs


def count_repeats(pairs: list[tuple[str, str]], quality: Quality) -> None:
    """Duplicate rows and inputs with several answers, over every split together."""
    quality.duplicates = len(pairs) - len(set(pairs))
    answers: dict[str, set[str]] = {}
    for x, y in pairs:
        answers.setdefault(x, set()).add(y)
    quality.conflicting_inputs = sum(1 for ys in answers.values() if len(ys) > 1)


@dataclass(frozen=True)
class RankingRow:
    """One ranking example: the query, its documents as (id, text) and the relevant ids."""

    query: str
    documents: tuple[tuple[str, str], ...]
    answers: frozenset[str]


def _document(doc, index: int) -> tuple[str, str] | None:
    if isinstance(doc, str):
        return (str(index), doc.strip())
    if isinstance(doc, dict):
        text = as_text(doc.get("text")) or ""
        title = as_text(doc.get("title"))
        doc_id = as_text(doc.get("doc_id", doc.get("id", index)))
        body = f"{title}: {text}" if title and text else (title or text)
        return (doc_id or str(index), body) if body else None
    return None


def ranking_rows(table, roles: dict[str, str], quality: Quality, where: str) -> list[RankingRow]:
    """Ranking rows in BlockRank's layout: documents as strings or as objects with
    ``doc_id``, ``title`` and ``text``; ``answer_ids`` a list of ids (or one id)."""
    rows = []
    records = zip(*(table[roles[r]].tolist() for r in RANKING_ROLES))
    for n, (query, docs, answer_ids) in enumerate(records):
        quality.rows += 1
        query = as_text(query)
        if hasattr(docs, "tolist"):  # a parquet list cell arrives as a numpy array
            docs = docs.tolist()
        if hasattr(answer_ids, "tolist"):
            answer_ids = answer_ids.tolist()
        if not isinstance(docs, list):
            raise IclscopeError(
                f"{where}: row {n} has {roles['documents']} of type {type(docs).__name__}, "
                "not a list",
                fix="give every row a list of documents (strings, or objects with doc_id, "
                "title and text)",
            )
        parsed = [_document(d, i) for i, d in enumerate(docs)]
        answers = answer_ids if isinstance(answer_ids, list) else [answer_ids]
        answers = frozenset(a for a in (as_text(a) for a in answers) if a)
        documents = tuple(d for d in parsed if d is not None)
        if not query or not documents or not answers & {d[0] for d in documents}:
            quality.empty += 1
            continue
        rows.append(RankingRow(query, documents, answers))
    return rows
