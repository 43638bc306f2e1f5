"""The intervention plan: the one data type every analysis hands to the engine.

A plan is a list of rows; each row is one forward pass's worth of edits on one prompt. The
engine stacks rows along the batch axis, so a sweep over a thousand components is a thousand
rows, not a thousand model calls. Plans are plain data (frozen dataclasses of ints, floats and
strings, plus a bank of named tensors), so they print, serialise into a run directory and
compare equal.

* :class:`Patch` sets ``act := (1 - alpha) * act + alpha * src`` at a hook, for chosen positions
  and heads. Activation patching, mean / zero / resample ablation and soft injection of a task
  vector differ only in ``source`` and ``alpha``.
* :class:`Knockout` forbids query positions from attending to key positions in one layer (an
  additive ``-inf`` on the pre-softmax scores), in chosen heads or all of them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Literal

from torch import Tensor

from interp.errors import IclscopeError

Source = Literal["clean", "corrupted", "mean", "zero", "resample", "tensor"]
"""Where a patch's replacement comes from:

* ``clean`` / ``corrupted``: the same hook and position in the cached clean or corrupted run of
  the row's prompt (``source_prompt`` overrides which prompt);
* ``mean``: the hook's mean over the plan's reference prompts, per position;
* ``zero``: zeros;
* ``resample``: the clean run of another prompt, ``source_prompt``;
* ``tensor``: ``plan.tensors[tensor]``, shaped like one position of the hook (e.g. a task vector
  ``(head, d_head)`` for ``hook_z``)."""

Base = Literal["clean", "corrupted"]
"""Which prompt a row runs forward on: patching *from* clean *into* corrupted runs on corrupted."""


@dataclass(frozen=True)
class Patch:
    """Replace or mix one hook's activation at some positions (and heads)."""

    hook: str
    source: Source
    positions: tuple[int, ...] | None = None
    """Token positions; ``None`` means every position."""
    heads: tuple[int, ...] | None = None
    """Heads for per-head hooks (``hook_z``, ``hook_q``...); ``None`` means every head."""
    alpha: float = 1.0
    source_prompt: int | None = None
    tensor: str | None = None

    def __post_init__(self) -> None:
        # lists and numpy ints become tuples of ints: a patch is hashable, plain data
        for name in ("positions", "heads"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(int(i) for i in getattr(self, name)))
        if not 0.0 <= self.alpha <= 1.0:
            raise IclscopeError(f"alpha {self.alpha} is outside [0, 1]", fix="use 0 <= alpha <= 1")
        if self.source == "tensor" and self.tensor is None:
            raise IclscopeError("a 'tensor' patch needs tensor=NAME", fix="name a plan tensor")
        if self.source == "resample" and self.source_prompt is None:
            raise IclscopeError("a 'resample' patch needs source_prompt", fix="pick a prompt")

    @property
    def layer(self) -> int | None:
        parts = self.hook.split(".")
        return int(parts[1]) if parts[0] == "blocks" else None


@dataclass(frozen=True)
class Knockout:
    """Query positions may not attend to key positions in ``layer`` (the given heads, or all)."""

    layer: int
    queries: tuple[int, ...]
    keys: tuple[int, ...]
    heads: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("queries", "keys", "heads"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(int(i) for i in getattr(self, name)))


Edit = Patch | Knockout


@dataclass(frozen=True)
class PlanRow:
    """One forward pass: a prompt, the edits applied to it, and labels for the result table.
    Derived facts (first layer, tail layer, ...) are computed once: a row is immutable and the
    engine asks often."""

    prompt: int
    edits: tuple[Edit, ...] = ()
    labels: tuple[tuple[str, object], ...] = ()
    """``(column, value)`` pairs for the result row, e.g. ``(("layer", 3), ("head", 1))``."""

    @cached_property
    def first_layer(self) -> int:
        """The earliest layer an edit touches: everything before it is the unedited run."""
        layers = [e.layer for e in self.edits]
        known = [layer for layer in layers if layer is not None]
        return min(known) if len(known) == len(layers) and known else 0

    @cached_property
    def first_position(self) -> int:
        """The earliest position an edit touches: attention is causal, so every position before
        it is exactly the unedited run's, at every layer."""
        starts = [
            0 if positions is None else min(positions, default=0)
            for positions in (e.queries if isinstance(e, Knockout) else e.positions
                              for e in self.edits)
        ]  # fmt: skip
        return min(starts, default=0)

    def check_overlaps(self) -> None:
        """Refuse two patches of one hook that touch the same position and head: one kernel
        call applies a hook's edits together, so their order would be undefined."""
        patches = [e for e in self.edits if isinstance(e, Patch)]
        for i, a in enumerate(patches):
            for b in patches[i + 1 :]:
                if a.hook == b.hook and _meet(a.positions, b.positions) and _meet(a.heads, b.heads):
                    raise IclscopeError(
                        f"a row of prompt {self.prompt} patches {a.hook} twice at the same "
                        "positions and heads",
                        fix="merge them into one Patch, or put them in separate rows",
                    )

    @cached_property
    def tail_layer(self) -> int | None:
        """The layer, when every edit is a patch in that layer *after* attention has mixed
        positions (``hook_z`` to ``hook_resid_post``): the row then leaves the unedited run only
        inside that layer's position-wise tail, at the edited positions."""
        if not self.edits or any(isinstance(e, Knockout) for e in self.edits):
            return None
        layers = {e.layer for e in self.edits}
        kinds = {e.hook.split(".", 2)[-1] for e in self.edits}
        if len(layers) != 1 or None in layers or not kinds <= set(TAIL_HOOKS):
            return None
        return layers.pop()

    @cached_property
    def point(self) -> int | None:
        """The one position every edit touches, if there is exactly one."""
        positions: set[int] = set()
        for e in self.edits:
            if getattr(e, "positions", None) is None:
                return None
            positions |= set(e.positions)
        return positions.pop() if len(positions) == 1 else None


def _meet(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> bool:
    """Whether two index sets share an element (``None`` is every index)."""
    return a is None or b is None or bool(set(a) & set(b))


TAIL_HOOKS = ("attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")
"""Hooks of a layer after its attention has mixed positions: each position is computed alone."""


@dataclass
class InterventionPlan:
    """Rows to run, the run they start from, and a bank of named tensors for ``tensor`` patches."""

    rows: list[PlanRow]
    base: Base = "corrupted"
    tensors: dict[str, Tensor] = field(default_factory=dict)
    reference_prompts: tuple[int, ...] | None = None
    """Prompts whose activations define ``mean`` sources (``None``: all prompts)."""

    def __len__(self) -> int:
        return len(self.rows)

    def hooks(self) -> list[str]:
        """Every hook a patch in the plan touches, sorted."""
        return sorted({e.hook for r in self.rows for e in r.edits if isinstance(e, Patch)})

    def to_json(self) -> str:
        """The plan as JSON (tensors by name and shape only), for the run directory."""
        rows = [
            {"prompt": r.prompt, "labels": dict(r.labels),
             "edits": [{"kind": type(e).__name__, **asdict(e)} for e in r.edits]}
            for r in self.rows
        ]  # fmt: skip
        tensors = {k: list(v.shape) for k, v in self.tensors.items()}
        return json.dumps({"base": self.base, "tensors": tensors, "rows": rows})

    def __repr__(self) -> str:
        kinds = sorted({type(e).__name__ for r in self.rows for e in r.edits})
        return (
            f"InterventionPlan({len(self.rows)} rows on {self.base}, edits: {', '.join(kinds)}; "
            f"hooks: {', '.join(self.hooks()[:4])}{' ...' if len(self.hooks()) > 4 else ''})"
        )
