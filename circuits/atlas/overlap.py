"""Role sets and their overlaps: which kinds of heads are the same heads.

Each analysis of the atlas scores every head for one job (retrieving the label, carrying the
task, keeping keys under eviction). A rule from :data:`~circuits.atlas.schema.ROLES` turns each
score into a set of heads, and two sets that share many heads suggest one mechanism seen by two
methods. Two sets drawn from the same few hundred heads always share some heads by chance, so
each pair's overlap is compared with the hypergeometric count expected by chance, and, because
every pair of roles is tested at once, the p-values are corrected with Holm's method.

The tables built here are the ``roles`` and ``overlaps`` tables of
:mod:`circuits.atlas.schema`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from circuits.atlas.schema import ROLES, Role
from interp.stats import holm, overlap_p_value

__all__ = [
    "OVERLAP_COLUMNS",
    "ROLE_COLUMNS",
    "format_p",
    "head_name",
    "overlap_sentences",
    "role_label",
    "role_overlaps",
    "role_sets",
]

ROLE_COLUMNS = ["role", "layer", "head", "score", "rule"]
"""Columns of the ``roles`` table, in order."""

OVERLAP_COLUMNS = [
    "role_a",
    "role_b",
    "size_a",
    "size_b",
    "shared",
    "expected",
    "p_value",
    "p_adjusted",
    "shared_heads",
]
"""Columns of the ``overlaps`` table, in order."""


def head_name(layer: int, head: int) -> str:
    """``L3H2``: how the atlas names a head in text, hover labels and ``shared_heads``."""
    return f"L{int(layer)}H{int(head)}"


def role_label(role: str, labels: dict[str, str] | None = None) -> str:
    """The words for a role: ``labels[role]`` if given, else the default role's label, else
    the key itself (a custom role with no label still reads as something)."""
    if labels and labels.get(role):
        return labels[role]
    if role in ROLES and ROLES[role].label:
        return ROLES[role].label
    return role


def _select(scored: pd.DataFrame, role: Role) -> pd.DataFrame:
    """The rows of ``scored`` (non-NaN scores only) that pass ``role``'s rule, highest first."""
    # one deterministic order for both rules: score down, then layer and head up
    ranked = scored.sort_values(
        ["score", "layer", "head"], ascending=[False, True, True], kind="mergesort"
    )
    if role.threshold is not None:
        return ranked[ranked["score"] >= role.threshold]
    if role.top is None or role.top < 0:
        raise ValueError(f"role on {role.score!r} needs top >= 0 or a threshold, got {role}")
    return ranked.head(role.top)


def role_sets(heads: pd.DataFrame, roles: dict[str, Role] = ROLES) -> pd.DataFrame:
    """The ``roles`` table: for each role, the heads its rule selects from ``heads``.

    Only heads with a score take part, so a NaN (a head the analysis did not score) never
    enters a top-k. ``top=k`` keeps the ``k`` highest scores, ties broken by layer then head so
    the same table always gives the same set; ``threshold`` keeps scores at or above it. A role
    whose score column is missing from ``heads``, or all NaN (its analysis was left out), adds
    no rows: the atlas of a partial run is still an atlas, with that role absent.
    """
    parts: list[pd.DataFrame] = []
    for name, role in roles.items():
        if role.score not in heads.columns:
            continue
        scored = pd.DataFrame(
            {
                "layer": heads["layer"].astype(int),
                "head": heads["head"].astype(int),
                "score": pd.to_numeric(heads[role.score], errors="coerce").astype(float),
            }
        ).dropna(subset=["score"])
        chosen = _select(scored, role)
        if chosen.empty:
            continue
        parts.append(chosen.assign(role=name, rule=role.rule())[ROLE_COLUMNS])
    if not parts:
        return _empty_roles()
    return pd.concat(parts, ignore_index=True)


def _empty_roles() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "role": pd.Series(dtype=object),
            "layer": pd.Series(dtype=int),
            "head": pd.Series(dtype=int),
            "score": pd.Series(dtype=float),
            "rule": pd.Series(dtype=object),
        }
    )


def _role_heads(roles_table: pd.DataFrame) -> dict[str, set[tuple[int, int]]]:
    """Each role's set of ``(layer, head)``, roles in the order they first appear."""
    sets: dict[str, set[tuple[int, int]]] = {}
    if roles_table.empty:  # no role at all, perhaps not even the columns
        return sets
    for role, layer, head in zip(roles_table["role"], roles_table["layer"], roles_table["head"]):
        sets.setdefault(str(role), set()).add((int(layer), int(head)))
    return sets


def _names(heads: Iterable[tuple[int, int]]) -> str:
    return " ".join(head_name(layer, head) for layer, head in sorted(heads))


def role_overlaps(roles_table: pd.DataFrame, total_heads: int) -> pd.DataFrame:
    """The ``overlaps`` table: one row per unordered pair of the roles in ``roles_table``.

    Pairs come in the order the roles first appear (``(a, b)`` with ``a`` before ``b``).
    ``expected`` is the mean overlap of two random sets of these sizes among ``total_heads``
    heads; ``p_value`` the hypergeometric chance of ``shared`` heads or more;
    ``p_adjusted`` Holm's correction over all pairs of this table, since the atlas reads every
    pair and one small p among dozens is what chance gives.
    """
    if total_heads < 1:
        raise ValueError(f"total_heads {total_heads} must be at least 1")
    sets = _role_heads(roles_table)
    names = list(sets)
    rows = []
    for i, role_a in enumerate(names):
        for role_b in names[i + 1 :]:
            a, b = sets[role_a], sets[role_b]
            shared = a & b
            rows.append(
                {
                    "role_a": role_a,
                    "role_b": role_b,
                    "size_a": len(a),
                    "size_b": len(b),
                    "shared": len(shared),
                    "expected": len(a) * len(b) / total_heads,
                    "p_value": overlap_p_value(len(shared), len(a), len(b), total_heads),
                    "shared_heads": _names(shared),
                }
            )
    table = pd.DataFrame(rows, columns=[c for c in OVERLAP_COLUMNS if c != "p_adjusted"])
    table.insert(7, "p_adjusted", holm(table["p_value"].tolist()) if rows else [])
    return table.astype(
        {
            "size_a": int,
            "size_b": int,
            "shared": int,
            "expected": float,
            "p_value": float,
            "p_adjusted": float,
        }
    )


def format_p(p: float) -> str:
    """A p-value to two significant figures (``0.055``, ``0.0031``, ``2.4e-05``, ``1``): two
    figures so that 0.055 never reads as 0.05 next to a cut at 0.05."""
    if not np.isfinite(p):
        return "n/a"
    if p >= 0.995:
        return "1"
    if p >= 0.001:
        return f"{p:.2g}"
    return f"{p:.1e}"


def _heads_phrase(count: int) -> str:
    return "no heads" if count == 0 else f"{count} head" + ("" if count == 1 else "s")


def overlap_sentences(
    overlaps: pd.DataFrame, roles_labels: dict[str, str], alpha: float = 0.05
) -> list[str]:
    """One plain sentence per pair of roles, the pairs that share more heads than chance first.

    A pair counts as more than chance when its Holm-adjusted p is below ``alpha``; those come
    first, smallest adjusted p first, then the others in the same order. Each sentence gives
    the count shared, the count chance would give, both p-values and the shared heads, so a
    reader can check the claim against the grid.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} must be between 0 and 1")
    n_pairs = len(overlaps)
    pairs = "pair" if n_pairs == 1 else "pairs"
    keyed = []
    for position, row in enumerate(overlaps.itertuples(index=False)):
        significant = bool(row.p_adjusted < alpha)
        a = role_label(str(row.role_a), roles_labels)
        b = role_label(str(row.role_b), roles_labels)
        stats = (
            f"{row.expected:.1f} expected by chance; p = {format_p(row.p_value)}, "
            f"{format_p(row.p_adjusted)} after Holm's correction over {n_pairs} {pairs}"
        )
        verdict = "" if significant else ", not more than chance"
        heads = str(row.shared_heads).split() if isinstance(row.shared_heads, str) else []
        listed = f": {', '.join(heads)}" if heads else ""
        sentence = f"the {a} and the {b} share {_heads_phrase(int(row.shared))}{verdict} "
        sentence += f"({stats}){listed}."
        keyed.append(((not significant, float(row.p_adjusted), position), sentence))
    return [sentence for _, sentence in sorted(keyed)]
