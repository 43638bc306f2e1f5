"""Training-free eviction flags: one small class per method behind one interface.

Every method turns one layer's prefill attention into a score per (head, key); the base class
owns what is shared: which keys may be evicted (the *context*: real tokens before the final
rows), which are forced to stay (sinks, a recent window), and the top-budget selection. So all
methods give the same flag tensor ``(batch, head, pos)`` for one layer at one eviction rate, and
stacking layers gives ``(layer, batch, head, pos)``: ``1`` kept, ``0`` evicted.

Budget: a row with ``n`` context tokens keeps ``round((1 - rate) * n)`` of them, forced ones
included (when more are forced than the budget allows, the most recent forced ones win). Keys
outside the context (padding, the final rows) are always flagged kept.

The methods (docs/analyses/eviction.md; kvpress was read for the conventions, nothing copied):

* :class:`StreamingLLM`: the first ``sinks`` tokens plus the most recent ones.
* :class:`H2O`: attention accumulated over every query, plus a recent window.
* :class:`SnapKV`: attention from the last ``window`` queries, 1-D average pooled, plus those
  queries' own keys.
* :class:`TOVA`: the last query's attention averaged over heads (the same flags for every head).
* :class:`RandomEviction`: uniform random scores, per head.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.errors import IclscopeError

FORCED = 1e6
"""Added to forced keys' scores: above any attention sum, so they win the top-k."""


def budgets(context: Bool[Tensor, "batch pos"], rate: float) -> Int[Tensor, " batch"]:
    """Context tokens each row keeps at eviction ``rate``."""
    if not 0.0 <= rate <= 1.0:
        raise IclscopeError(f"eviction rate {rate} is not in [0, 1]", fix="use e.g. 0.5")
    n = context.sum(-1).double()
    return torch.round((1.0 - rate) * n).long()


def select(
    scores: Float[Tensor, "batch head pos"],
    context: Bool[Tensor, "batch pos"],
    keep: Int[Tensor, " batch"],
) -> Float[Tensor, "batch head pos"]:
    """Flags keeping the ``keep[b]`` best-scored context keys per (row, head); ties go to the
    earlier key (a stable sort), so flags are deterministic."""
    ranked = scores.masked_fill(~context[:, None], float("-inf"))
    order = torch.sort(ranked, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1]).expand_as(order).contiguous())
    kept = rank < keep[:, None, None]
    return torch.where(context[:, None], kept.float(), torch.ones_like(scores))


def recent(context: Bool[Tensor, "batch pos"], n: Int[Tensor, " batch"] | int) -> Bool:
    """The last ``n`` context tokens of each row."""
    from_end = context.flip(-1).cumsum(-1).flip(-1)  # 1 at the last context token
    n = torch.as_tensor(n).reshape(-1, 1)
    return context & (from_end <= n)


def first(context: Bool[Tensor, "batch pos"], n: int) -> Bool[Tensor, "batch pos"]:
    """The first ``n`` context tokens of each row."""
    return context & (context.cumsum(-1) <= n)


@dataclass
class EvictionMethod(ABC):
    """Scores keys from one layer's prefill attention; :meth:`flags` keeps the top budget."""

    name: ClassVar[str]
    needs_attention: ClassVar[bool] = True

    @abstractmethod
    def score(
        self,
        pattern: Float[Tensor, "batch head q k"] | None,
        queries: Bool[Tensor, "batch q"],
        context: Bool[Tensor, "batch k"],
        layer: int,
    ) -> Float[Tensor, "batch head k"]:
        """Higher = more worth keeping. ``queries``: the real (unpadded) query rows."""

    def forced(
        self, context: Bool[Tensor, "batch k"], keep: Int[Tensor, " batch"]
    ) -> Bool[Tensor, "batch k"]:
        """Context keys kept whatever their score (within the budget)."""
        return torch.zeros_like(context)

    def flags(
        self,
        pattern: Float[Tensor, "batch head q k"] | None,
        queries: Bool[Tensor, "batch q"],
        context: Bool[Tensor, "batch k"],
        rate: float,
        layer: int = 0,
        n_heads: int | None = None,
    ) -> Float[Tensor, "batch head k"]:
        if pattern is None and n_heads is None:
            raise IclscopeError(f"{self.name} needs the number of heads", fix="pass n_heads")
        return self.keep(self.score(pattern, queries, context, layer), context, rate, n_heads)

    def keep(
        self,
        scores: Float[Tensor, "batch head k"],
        context: Bool[Tensor, "batch k"],
        rate: float,
        n_heads: int | None = None,
    ) -> Float[Tensor, "batch head k"]:
        """Flags from scores at one rate (scores do not depend on the rate: score once)."""
        context = context.bool()
        keep = budgets(context, rate)
        if scores.shape[1] == 1 and n_heads is not None:
            scores = scores.expand(-1, n_heads, -1)
        pos = torch.arange(context.shape[-1], dtype=scores.dtype)
        forced = self.forced(context, keep)[:, None]
        scores = torch.where(forced, FORCED + pos, scores.to(pos.dtype))
        return select(scores, context, keep)


@dataclass
class StreamingLLM(EvictionMethod):
    """Xiao et al. 2023: attention sinks. Keeps the first ``sinks`` tokens and fills the rest
    of the budget with the most recent ones; reads no attention."""

    sinks: int = 4
    name: ClassVar[str] = "streaming_llm"
    needs_attention: ClassVar[bool] = False

    def score(self, pattern, queries, context, layer):
        pos = torch.arange(context.shape[-1], dtype=torch.float32)
        return pos.expand(context.shape[0], 1, -1)  # later = better

    def forced(self, context, keep):
        return first(context, self.sinks)


@dataclass
class H2O(EvictionMethod):
    """Zhang et al. 2023, heavy hitters: the attention each key received, summed over every
    query row, per head. ``window`` recent tokens are kept as well; ``None`` gives them half
    the budget, as in the paper's even split between heavy hitters and recent tokens."""

    window: int | None = None
    name: ClassVar[str] = "h2o"

    def score(self, pattern, queries, context, layer):
        return (pattern * queries[:, None, :, None]).sum(-2)

    def forced(self, context, keep):
        return recent(context, keep // 2 if self.window is None else self.window)


@dataclass
class SnapKV(EvictionMethod):
    """Li et al. 2024: the last ``window`` query rows (the observation window) vote for keys,
    summed over those rows, then a 1-D average pool of width ``kernel`` keeps neighbours of
    voted keys together. The window's own keys are kept (when they are context)."""

    window: int = 32
    kernel: int = 5
    name: ClassVar[str] = "snapkv"

    def score(self, pattern, queries, context, layer):
        votes = pattern[:, :, -self.window :].sum(-2)  # (batch, head, k)
        b, h, k = votes.shape
        pooled = F.avg_pool1d(votes.reshape(b * h, 1, k), self.kernel, 1, self.kernel // 2)
        return pooled.reshape(b, h, k)

    def forced(self, context, keep):
        n_pos = context.shape[-1]
        return context & (torch.arange(n_pos) >= n_pos - self.window)


@dataclass
class TOVA(EvictionMethod):
    """Oren et al. 2024, token omission via attention: the last query's attention, averaged
    over heads, so every head of a layer keeps the same tokens."""

    name: ClassVar[str] = "tova"

    def score(self, pattern, queries, context, layer):
        return pattern[:, :, -1].mean(1, keepdim=True)


@dataclass
class RandomEviction(EvictionMethod):
    """Uniform random scores per (row, head, key): the floor every method must beat. Seeded
    per layer, so the same seed gives the same flags."""

    seed: int = 0
    name: ClassVar[str] = "random"
    needs_attention: ClassVar[bool] = False

    def score(self, pattern, queries, context, layer):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + layer)
        heads = 1 if pattern is None else pattern.shape[1]
        return torch.rand(context.shape[0], heads, context.shape[-1], generator=gen)

    def flags(self, pattern, queries, context, rate, layer=0, n_heads=None):
        if pattern is None and n_heads is not None:  # one draw per head, not one shared
            pattern = torch.zeros(context.shape[0], n_heads, 1, 1)
        return super().flags(pattern, queries, context, rate, layer, n_heads)


METHODS: dict[str, type[EvictionMethod]] = {
    m.name: m for m in (StreamingLLM, H2O, SnapKV, TOVA, RandomEviction)
}


def get_method(name: str, **kw) -> EvictionMethod:
    if name not in METHODS:
        raise IclscopeError(f"unknown eviction method {name!r}", fix=f"use one of {list(METHODS)}")
    return METHODS[name](**kw)
