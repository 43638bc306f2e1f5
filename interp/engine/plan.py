"""The intervention plan: the one data type every analysis hands to the engine.

A plan is a list of rows; each row is one forward pass's worth of edits on one prompt. The
engine stacks rows along the batch axis, so a sweep over a thousand components is a thousand
rows, not a thousand model calls. Plans are plain data (frozen dataclasses of ints, floats and
strings, plus a bank of named tensors), so they print, serialise into a run directory and
compare equal; :meth:`InterventionPlan.to_json` and :meth:`InterventionPlan.from_json` carry
them through a run directory. Every constructor checks its fields, so a malformed plan fails
where it is made with an :class:`~interp.errors.IclscopeError`, not deep inside the engine.

* :class:`Patch` sets ``act := (1 - alpha) * act + alpha * src`` at a hook, for chosen positions
  and heads. Activation patching, mean / zero / resample ablation and soft injection of a task
  vector differ only in ``source`` and ``alpha``.
* :class:`Knockout` forbids query positions from attending to key positions in one layer (an
  additive ``-inf`` on the pre-softmax scores), in chosen heads or all of them.
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal, get_args

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

_INDEX_FIX = "give token positions, heads, layers and prompts as integers counted from 0"


def _index(value: Any, what: str) -> int:
    """A non-negative int (numpy ints accepted; floats and strings are not indices)."""
    try:
        i = operator.index(value)
    except TypeError:
        raise IclscopeError(f"{what} {value!r} is not an integer", fix=_INDEX_FIX) from None
    if i < 0:
        raise IclscopeError(f"{what} {i} is negative", fix=_INDEX_FIX)
    return i


def _indices(values: Any, what: str) -> tuple[int, ...]:
    """A tuple of non-negative ints from any iterable of them (lists, numpy arrays)."""
    not_a_list = IclscopeError(f"{what} {values!r} is not a list of integers", fix=_INDEX_FIX)
    if isinstance(values, (str, bytes)):
        raise not_a_list
    try:
        items = tuple(values)
    except TypeError:
        raise not_a_list from None
    return tuple(_index(v, what) for v in items)


def _set_indices(obj: Any, names: tuple[str, ...]) -> None:
    """Store each named field of a frozen dataclass as a tuple of ints (None stays None)."""
    for name in names:
        if getattr(obj, name) is not None:
            object.__setattr__(obj, name, _indices(getattr(obj, name), name))


def _fraction(alpha: Any) -> float:
    """A patch's mixing weight: a number in [0, 1] (not a bool, not NaN)."""
    number = isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
    if not number or math.isnan(alpha):
        raise IclscopeError(f"alpha {alpha!r} is not a number", fix="use 0 <= alpha <= 1")
    if not 0.0 <= alpha <= 1.0:
        raise IclscopeError(f"alpha {alpha} is outside [0, 1]", fix="use 0 <= alpha <= 1")
    return float(alpha)


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
        if not isinstance(self.hook, str) or not self.hook:
            raise IclscopeError(
                f"hook {self.hook!r} is not a hook name",
                fix="name a hook point, e.g. 'blocks.0.attn.hook_z'",
            )
        if self.source not in get_args(Source):
            raise IclscopeError(
                f"unknown patch source {self.source!r}",
                fix=f"use one of {', '.join(get_args(Source))}",
            )
        # lists and numpy ints become tuples of ints: a patch is hashable, plain data
        _set_indices(self, ("positions", "heads"))
        object.__setattr__(self, "alpha", _fraction(self.alpha))
        if self.source_prompt is not None:
            object.__setattr__(self, "source_prompt", _index(self.source_prompt, "source_prompt"))
        if self.source == "tensor" and not isinstance(self.tensor, str):
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
        object.__setattr__(self, "layer", _index(self.layer, "layer"))
        for name in ("queries", "keys"):
            if getattr(self, name) is None:
                raise IclscopeError(f"a knockout needs {name}", fix="list the positions")
        _set_indices(self, ("queries", "keys", "heads"))


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", _index(self.prompt, "prompt"))
        edits = self.edits
        if not isinstance(edits, (list, tuple)) or not all(
            isinstance(e, (Patch, Knockout)) for e in edits
        ):
            raise IclscopeError(
                f"the edits of a row must be Patch or Knockout objects, not {edits!r}",
                fix="build edits with Patch(...) or Knockout(...)",
            )
        object.__setattr__(self, "edits", tuple(edits))
        object.__setattr__(self, "labels", _labels(self.labels))

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
            for positions in (
                e.queries if isinstance(e, Knockout) else e.positions for e in self.edits
            )
        ]
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


def _labels(labels: Any) -> tuple[tuple[str, object], ...]:
    """``(column, value)`` pairs whose values are JSON scalars (numpy scalars become Python
    ones): labels become table columns and ``plan.json``."""
    fix = "write labels as e.g. (('layer', 3), ('head', 1)): str columns, plain values"
    pair = lambda p: isinstance(p, (tuple, list)) and len(p) == 2
    if not isinstance(labels, (tuple, list)) or not all(pair(p) for p in labels):
        raise IclscopeError(f"row labels {labels!r} are not (column, value) pairs", fix)
    scalar = lambda v: v.item() if hasattr(v, "item") and getattr(v, "shape", None) == () else v
    pairs = [(k, scalar(v)) for k, v in labels]
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool, type(None))):
            raise IclscopeError(f"row label {key!r}: {value!r} is not a column and a value", fix)
    if len({key for key, _ in pairs}) < len(pairs):
        raise IclscopeError(f"row labels {labels!r} name a column twice", fix)
    return tuple(pairs)


def _meet(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> bool:
    """Whether two index sets share an element (``None`` is every index)."""
    return a is None or b is None or bool(set(a) & set(b))


def _edit(data: dict) -> Edit:
    """An edit from its ``to_json`` form."""
    fields = dict(data)
    kind = {"Patch": Patch, "Knockout": Knockout}.get(fields.pop("kind", None))
    if kind is None:
        raise ValueError(f"unknown edit kind {data.get('kind')!r}")
    return kind(**fields)


def _row(data: dict) -> PlanRow:
    """A plan row from its ``to_json`` form."""
    return PlanRow(
        data["prompt"], tuple(_edit(e) for e in data["edits"]), tuple(data["labels"].items())
    )


def _shapes(tensors: dict[str, Tensor]) -> dict[str, list[int]]:
    return {name: list(t.shape) for name, t in tensors.items()}


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

    def __post_init__(self) -> None:
        if self.base not in get_args(Base):
            raise IclscopeError(f"unknown plan base {self.base!r}", fix="use clean or corrupted")
        if not all(isinstance(r, PlanRow) for r in self.rows):
            raise IclscopeError("plan rows must be PlanRow objects", fix="build rows with PlanRow")
        self.rows = list(self.rows)
        if self.reference_prompts is not None:
            self.reference_prompts = _indices(self.reference_prompts, "reference_prompts")

    def __len__(self) -> int:
        return len(self.rows)

    def hooks(self) -> list[str]:
        """Every hook a patch in the plan touches, sorted."""
        return sorted({e.hook for r in self.rows for e in r.edits if isinstance(e, Patch)})

    def to_json(self) -> str:
        """The plan as JSON (tensors by name and shape only), for the run directory."""
        rows = [
            {
                "prompt": r.prompt,
                "labels": dict(r.labels),
                "edits": [{"kind": type(e).__name__, **asdict(e)} for e in r.edits],
            }
            for r in self.rows
        ]
        refs = None if self.reference_prompts is None else list(self.reference_prompts)
        return json.dumps(
            {
                "base": self.base,
                "tensors": _shapes(self.tensors),
                "reference_prompts": refs,
                "rows": rows,
            }
        )

    @classmethod
    def from_json(cls, text: str, tensors: dict[str, Tensor] | None = None) -> InterventionPlan:
        """The plan :meth:`to_json` wrote. It records tensors by shape only, so a plan with
        ``tensor`` patches needs them passed back in ``tensors`` (their shapes are checked)."""
        try:
            data = json.loads(text)
            rows = [_row(r) for r in data["rows"]]
            shapes, base, refs = data["tensors"], data["base"], data.get("reference_prompts")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise IclscopeError(
                f"not a plan: {type(err).__name__} {err}",
                fix="pass the text of a plan.json written by InterventionPlan.to_json",
            ) from None
        given = dict(tensors or {})
        if _shapes(given) != shapes:
            raise IclscopeError(
                f"the plan's tensors have shapes {shapes}, but {_shapes(given)} were given",
                fix="pass the plan's tensors back, by name",
            )
        return cls(rows, base=base, tensors=given, reference_prompts=refs)

    def __repr__(self) -> str:
        kinds = sorted({type(e).__name__ for r in self.rows for e in r.edits})
        return (
            f"InterventionPlan({len(self.rows)} rows on {self.base}, edits: {', '.join(kinds)}; "
            f"hooks: {', '.join(self.hooks()[:4])}{' ...' if len(self.hooks()) > 4 else ''})"
        )
