"""Findings a report should not let pass in silence: attention that goes to a sink rather than
to content, and accuracy below what guessing gives.

Both are written as sentences from the numbers, for any report to include.
"""

from __future__ import annotations

import random

import pandas as pd

SINK_SHARE = 0.5
"""A position other than the first is a sink when its token carries no word (punctuation, a
newline, a special token) and it is the strongest target of at least this share of the heads
(whatever the prompt says, many heads park their attention there)."""


def chance_level(family: str) -> float | None:
    """What guessing scores on a classification family, argmax over the prompt's own label
    words: the mean of 1 / (label words in the prompt) over a fixed sample of prompts. None for
    a family that is not classification or is not registered (a function task has no chance
    level worth stating)."""
    from interp.tasks.suite import get_family

    try:
        fam = get_family(family)
    except Exception:  # noqa: BLE001 (an unknown family simply has no chance level)
        return None
    if fam.kind != "classification":
        return None
    rng = random.Random(f"chance:{family}")
    counts = [len(set(fam.sample(rng, 4).labels)) for _ in range(32)]
    counts = [c for c in counts if c > 0]
    return sum(1 / c for c in counts) / len(counts) if counts else None


def below_chance(accuracy: float, chance: float | None, margin: float = 0.0) -> bool:
    """Whether ``accuracy`` is below ``chance`` by more than ``margin``."""
    return chance is not None and accuracy < chance - margin


def below_chance_sentence(rows: list[tuple[str, int, float]], chance: dict[str, float]) -> str:
    """One sentence naming each (family, shots, accuracy) below its family's chance level, or
    "" when none is."""
    low = [(f, k, a) for f, k, a in rows if below_chance(a, chance.get(f))]
    if not low:
        return ""
    cells = "; ".join(f"{f} at {k} shots: {a:.3f} (chance {chance[f]:.3f})" for f, k, a in low)
    return (
        f"**Warning**: below chance, worse than guessing among the prompt's labels: {cells}. "
        "The model prefers a wrong label there (a label bias, or labels it reads against their "
        "meaning), so do not read these cells as learning."
    )


def attention_sinks(attention: pd.DataFrame, share: float = SINK_SHARE) -> list[int]:
    """The sink positions of one query's attention (a tidy table with ``layer``, ``head``,
    ``position``, ``weight`` and ``token``): the first position when some head attends to it
    most (the usual sink, the first token whatever it says), and any position whose token
    carries no word and is the strongest target of at least ``share`` of the heads."""
    top = attention.loc[attention.groupby(["layer", "head"]).weight.idxmax()]
    first = int(attention.position.min())
    counts = top.position.value_counts() / len(top)
    words = dict(zip(attention.position, attention.token.astype(str)))
    sinks = {
        int(p)
        for p, c in counts.items()
        if c >= share and not any(ch.isalnum() for ch in _bare(words[p]))
    }
    if (top.position == first).any():
        sinks.add(first)
    return sorted(sinks)


def _bare(token: str) -> str:
    """A token without the angle brackets of a special token's name (``<s>`` carries no word)."""
    return "" if token.startswith("<") and token.endswith(">") else token


def sink_lines(attention: pd.DataFrame, describe) -> tuple[list[str], pd.DataFrame]:
    """The report's sentence on the sinks of ``attention`` (nothing when there are none) and
    the attention past them: the table without the sink positions. ``describe(row)`` names a
    position as the report writes it."""
    sinks = attention_sinks(attention)
    if not sinks:
        return [], attention
    top = attention.loc[attention.groupby(["layer", "head"]).weight.idxmax()]
    heads = len(top)
    parts = []
    for p in sinks:
        at = attention[attention.position == p]
        row = at.iloc[0]
        parts.append(
            f"{describe(row)}, the strongest target of {int((top.position == p).sum())} of "
            f"{heads} heads (mean weight {at.weight.mean():.2f})"
        )
    lines = [
        "Attention sinks: " + "; ".join(parts) + ". A sink takes attention whatever the prompt "
        "says (the heads park it there), so it is listed apart and the strongest attention past "
        "the sinks follows.",
        "",
    ]
    return lines, attention[~attention.position.isin(sinks)]
