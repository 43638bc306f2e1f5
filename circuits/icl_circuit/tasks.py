"""Which family the circuit runs on when none is named: one the model's tokenizer can build.

The circuit reads each label at one position, so every label must be a single token on the
model's tokenizer: ``kappa`` is one token in the organism's vocabulary and two in SmolLM2's.
The model's own suite comes first (English families on real models), arbitrary labels before
natural ones: a label such as ``foo`` can only be learned from the demonstrations, which is
what the circuit dissects.
"""

from __future__ import annotations

from interp.errors import IclscopeError
from interp.tasks.suite import family_support, get_family, own_suite

DEFAULT_TASKS = {
    "natural": (
        "nl_sentiment_arbitrary",
        "nl_kind_arbitrary",
        "nl_topic_arbitrary",
        "nl_sentiment_natural",
        "nl_kind_natural",
        "nl_topic_natural",
    ),
    "organism": ("sentiment_arbitrary", "sentiment_semantic"),
}
"""Candidates for the default task, in order of preference, per suite."""


def default_task(tokenizer) -> tuple[str, str]:
    """The first candidate of the tokenizer's own suite (then of the other) that it builds
    with single-token labels, and why, in words for the log."""
    suite = own_suite(tokenizer)
    other = "organism" if suite == "natural" else "natural"
    refused = []
    for name in (*DEFAULT_TASKS[suite], *DEFAULT_TASKS[other]):
        reason = family_support(get_family(name), tokenizer)
        if reason is None:
            skipped = f"; {', '.join(refused)} cannot be built" if refused else ""
            return name, f"the default: its labels are single tokens on this tokenizer{skipped}"
        refused.append(name)
    raise IclscopeError(
        "no built-in classification family has single-token labels on this model's tokenizer",
        fix="pass --task with a task file (its labels are then read by their first token)",
    )
