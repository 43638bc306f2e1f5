"""The atlas's tables, named once: what every part of the atlas (its run, figures, comparison
and explorer page) reads and writes.

``heads`` (one row per attention head)
    ``layer``, ``head``, ``depth`` (``layer / (n_layers - 1)``, so models of different depth
    line up), then one column per score in :data:`SCORES`, and for a score with an interval
    ``<score>_low`` and ``<score>_high`` (NaN where the underlying run gives none). A score the
    atlas could not compute (its analysis was left out) is a column of NaN.
``roles`` (one row per head in a role)
    ``role`` (a key of :data:`ROLES`), ``layer``, ``head``, ``score`` (the head's score for the
    role) and ``rule`` (the rule in words, the same on every row of a role).
``overlaps`` (one row per unordered pair of roles)
    ``role_a``, ``role_b``, ``size_a``, ``size_b``, ``shared`` (heads in both), ``expected``
    (``size_a * size_b / heads``, the count under chance), ``p_value`` (hypergeometric, one
    sided: this many shared heads or more), ``p_adjusted`` (Holm over the pairs) and
    ``shared_heads`` (``"L3H2 L5H1"``, in layer then head order).
"""

from __future__ import annotations

from dataclasses import dataclass

SCORES: dict[str, str] = {
    "forerunner": "forerunner score: attention from the label token to its demonstration's text "
    "(circuit step 2)",
    "retrieval": "retrieval correctness: how often the head's output at the query points to the "
    "right label (circuit step 3)",
    "label_assignment": "label-assignment accuracy of the head's output at the query "
    "(circuit step 3)",
    "aie": "average indirect effect on the answer when the head's mean output is patched into "
    "a corrupted prompt (function vector), mean over tasks",
    "alpha": "soft-injection weight alpha learned for the head, mean over tasks",
    "relevance": "calibrated precision@1 of the head's query-to-document attention (block "
    "relevance)",
    "snapkv_kept": "share of the head's attention (at the query line) that falls on the keys "
    "SnapKV keeps at 50% eviction",
    "gate_kept": "share of the head's context keys the attention gate keeps at its own threshold",
    "band_drop": "drop in accuracy when the attention edges of the head's layer band are "
    "knocked out (circuit), the largest over the band's edges",
}
"""Every score column of ``heads``, with what it measures."""


@dataclass(frozen=True)
class Role:
    """A role set: the heads whose ``score`` passes the rule. ``top``: the ``top`` highest
    scores (ties broken by layer, then head); ``threshold``: a score at or above it (a paper's
    own cut). One of the two is set."""

    score: str
    top: int | None = None
    threshold: float | None = None
    label: str = ""

    def rule(self) -> str:
        if self.threshold is not None:
            return f"{self.score} >= {self.threshold:g}"
        return f"top {self.top} by {self.score}"


ROLES: dict[str, Role] = {
    "forerunner": Role("forerunner", top=10, label="forerunner heads"),
    "retrieval": Role("retrieval", top=10, label="retrieval heads"),
    "label_assignment": Role("label_assignment", top=10, label="label-assignment heads"),
    "fv": Role("aie", top=10, label="function-vector heads"),
    "soft_injection": Role("alpha", threshold=0.9, label="soft-injection heads"),
    "relevance": Role("relevance", top=10, label="relevance heads"),
    "snapkv_keeps": Role("snapkv_kept", top=10, label="heads SnapKV keeps most"),
    "gate_keeps": Role("gate_kept", top=10, label="heads the gate keeps most"),
}
"""The default role sets by name. ``band_drop`` has no role: every head of a band shares its
value, so a top-k over it would be decided by ties."""

TABLES = ("heads", "roles", "overlaps")
