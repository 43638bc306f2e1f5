"""What ``iclscope tasks --task PATH --model M`` prints: what was inferred from a task file and
what the model's tokenizer can build from it."""

from __future__ import annotations

import statistics
from collections import Counter

from interp.tasks.family import TaskFamily


def _answers(family: TaskFamily) -> list[str]:
    splits = family.sample.splits
    if family.kind == "ranking":
        return []
    return [y for rows in splits.values() for _, y in rows]


def describe(family: TaskFamily, tokenizer=None) -> dict:
    """The family as a JSON object: origin, kind, rows, splits, labels and data quality; with
    a tokenizer, also answer lengths in tokens, whether prompts build, and the scores that
    apply."""
    from interp.tasks.files.columns import Quality

    origin = family.origin
    answers = _answers(family)
    out = {
        "name": family.name,
        "path": origin.path,
        "format": origin.format,
        "kind": family.kind,
        "kind_inferred": origin.kind_inferred,
        "rows": origin.quality["rows"],
        "splits": origin.splits,
        "split_made": origin.split_made,
        "columns": origin.columns,
        "template": family.template.demo,
        "distinct_answers": len(set(answers)) if answers else None,
        "labels": dict(Counter(answers).most_common()) if family.kind == "classification" else None,
        "sha256": origin.sha256,
        "quality": origin.quality,
        "warnings": Quality(**origin.quality).lines(),
    }
    if tokenizer is not None:
        out.update(tokenizer_view(family, tokenizer, answers))
    return out


def tokenizer_view(family: TaskFamily, tokenizer, answers: list[str]) -> dict:
    """Answer lengths in tokens (after the template's label prefix), whether prompts build, and
    which scores apply (first-token needs classification labels whose first tokens differ)."""
    from interp.tasks.suite import family_support

    reason = family_support(family, tokenizer)
    view: dict = {"builds": reason is None, "why_not": reason}
    if family.kind == "ranking":
        view["scores"] = ["first-token"]
        return view
    from interp.tasks.scoring import answer_separator, answer_token_lengths

    separator = answer_separator(family.template)
    lengths = Counter(answer_token_lengths(tokenizer, answers, separator))
    flat = sorted(n for n, c in lengths.items() for _ in range(c))
    view["answer_tokens"] = {
        "min": flat[0],
        "median": statistics.median(flat),
        "mean": round(statistics.fmean(flat), 2),
        "max": flat[-1],
        "one_token_share": round(lengths.get(1, 0) / len(flat), 3),
    }
    scores = ["first-token", "exact"]
    if family.kind == "classification":
        from interp.tasks.scoring import first_token_collisions

        collisions = first_token_collisions(tokenizer, list(family.labels), separator)
        view["first_token_collisions"] = [sorted(group) for group in collisions.values()]
        if collisions:
            scores.remove("first-token")
    view["scores"] = scores
    return view
