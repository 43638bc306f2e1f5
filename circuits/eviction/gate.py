"""The attention gate (Zeng et al. 2024, "In-context KV-Cache Eviction for LLMs via
Attention-Gate"; no public code; see the eviction page of the docs, ``docs/analyses/eviction.md``).

One small gate per layer reads that layer's input ``h[l]`` (the whole context, causally) and
emits a keep probability per token and head:

    g = sigmoid(W_out · CausalMHA_small(rmsnorm(h[l])))        # (batch, head, pos)
    f = 1[g >= tau]   forward,   dg   backward                  # straight-through estimator

The reduced attention (``gate_heads`` heads of ``gate_d_head`` dims) lets a token's flag depend
on what came before it, which a per-token linear map cannot. The flag of token ``t`` depends
only on tokens ``<= t``, so the gate can run while the cache fills, as eviction must.

``target_rate`` is the share of context tokens the gate should evict; the training objectives
(:mod:`circuits.eviction.train`) pull the measured rate towards it. With ``tau = 0.5`` the rate
is whatever the trained gate decides (``gate_rate`` in a run's summary); :meth:`GateStack.keep`
instead keeps the top budget by ``g`` for a fixed rate, so the gate's scores compare with the
training-free methods at equal rates.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from circuits.eviction.methods import budgets, recent, select
from interp.errors import IclscopeError


def straight_through(g: Float[Tensor, "..."], tau: float = 0.5) -> Float[Tensor, "..."]:
    """Hard flags ``1[g >= tau]`` in the forward pass whose gradient is that of ``g``."""
    hard = (g >= tau).to(g.dtype)
    return hard + (g - g.detach())  # exactly hard forward: g - g is 0.0


class AttentionGate(nn.Module):
    """One layer's gate: reduced causal attention over ``h[l]``, a linear map to the model's
    heads, a sigmoid."""

    def __init__(self, d_model: int, n_heads: int, gate_heads: int = 2, gate_d_head: int = 16):
        super().__init__()
        self.gate_heads, self.gate_d_head = gate_heads, gate_d_head
        width = gate_heads * gate_d_head
        self.qkv = nn.Linear(d_model, 3 * width)
        self.out = nn.Linear(width, n_heads)

    def logits(
        self, h: Float[Tensor, "batch pos d_model"], real: Bool[Tensor, "batch pos"] | None = None
    ) -> Float[Tensor, "batch head pos"]:
        b, n, _ = h.shape
        x = h.float() * torch.rsqrt(h.float().pow(2).mean(-1, keepdim=True) + 1e-6)
        q, k, v = self.qkv(x).view(b, n, 3, self.gate_heads, self.gate_d_head).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (batch, gate_head, pos, d)
        causal = torch.ones(n, n, dtype=torch.bool, device=h.device).tril()
        allowed = causal[None, None]
        if real is not None:  # padding is never attended (a token still sees itself)
            allowed = allowed & (real[:, None, None, :] | torch.eye(n, dtype=torch.bool))
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.out(z.transpose(1, 2).reshape(b, n, -1)).transpose(1, 2)

    def forward(self, h, real=None) -> Float[Tensor, "batch head pos"]:
        """Keep probabilities ``g``."""
        return torch.sigmoid(self.logits(h, real))


class GateStack(nn.Module):
    """One :class:`AttentionGate` per layer, with the configuration that rebuilds them."""

    def __init__(
        self, n_layers, d_model, n_heads, target_rate=0.5, tau=0.5, gate_heads=2, gate_d_head=16
    ):
        super().__init__()
        if not 0.0 < target_rate < 1.0:
            raise IclscopeError(f"target rate {target_rate} is not in (0, 1)", fix="e.g. 0.5")
        self.config = dict(
            n_layers=n_layers,
            d_model=d_model,
            n_heads=n_heads,
            target_rate=target_rate,
            tau=tau,
            gate_heads=gate_heads,
            gate_d_head=gate_d_head,
        )
        self.target_rate, self.tau = target_rate, tau
        self.gates = nn.ModuleList(
            AttentionGate(d_model, n_heads, gate_heads, gate_d_head) for _ in range(n_layers)
        )

    @classmethod
    def for_model(cls, cfg, **kw) -> GateStack:
        return cls(cfg.n_layers, cfg.d_model, cfg.n_heads, **kw)

    def probs(self, hidden: list[Tensor], real=None) -> Float[Tensor, "layer batch head pos"]:
        return torch.stack([gate(h, real) for gate, h in zip(self.gates, hidden)])

    def flags(
        self, hidden: list[Tensor], context: Bool[Tensor, "batch pos"], real=None
    ) -> Float[Tensor, "layer batch head pos"]:
        """Straight-through flags at ``tau``; keys outside the context stay kept."""
        hard = straight_through(self.probs(hidden, real), self.tau)
        return torch.where(context[None, :, None], hard, torch.ones_like(hard))

    @torch.no_grad()
    def keep(
        self, hidden, context, rate: float, real=None, window: int = 0
    ) -> Float[Tensor, "layer batch head k"]:
        """The top ``1 - rate`` of the context by ``g``, per layer, row and head; with
        ``window``, the last ``window`` context tokens first (as SnapKV keeps its window)."""
        g = self.probs(hidden, real)
        keep = budgets(context, rate)
        if window:
            last = recent(context, torch.minimum(keep, torch.tensor(window)))[:, None]
            g = torch.where(last, 2.0 + torch.arange(context.shape[-1]) / 1e6, g)
        return torch.stack([select(g_l, context, keep) for g_l in g])

    @torch.no_grad()
    def keep_pooled(
        self, hidden, context, rate: float, real=None
    ) -> Float[Tensor, "layer batch head pos"]:
        """The top ``1 - rate`` of each row's context keys by ``g``, pooled over every layer
        and head: the gate's own split of the budget between heads (as its threshold makes),
        moved to an exact rate. Keys outside the context stay kept."""
        g = self.probs(hidden, real)
        flags = torch.ones_like(g)
        for b in range(g.shape[1]):
            inside = g[:, b][..., context[b]]  # layer, head, context keys of row b
            n_keep = int(round((1.0 - rate) * inside.numel()))
            kept = torch.zeros(inside.numel(), dtype=g.dtype)
            kept[inside.flatten().topk(n_keep).indices] = 1.0
            flags[:, b, :, context[b]] = kept.view_as(inside)
        return flags

    def save(self, folder: str | Path, record: dict | None = None) -> Path:
        """``gate.pt``, ``gate.json`` and the training record ``training.json``, each written
        atomically and the record last, while a stop signal waits: a folder never holds half
        a file, and one with a record holds the gate it describes."""
        from interp.io import atomic_write_bytes, atomic_write_text
        from interp.stops import deferred_stops

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with deferred_stops():
            weights = io.BytesIO()
            torch.save(self.state_dict(), weights)
            atomic_write_bytes(folder / "gate.pt", weights.getvalue())
            atomic_write_text(folder / "gate.json", json.dumps(self.config, indent=2))
            if record is not None:
                atomic_write_text(folder / "training.json", json.dumps(record, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> GateStack:
        folder = Path(folder)
        if not (folder / "gate.json").exists() or not (folder / "gate.pt").exists():
            raise IclscopeError(
                f"no trained gate in {folder} (gate.json and gate.pt)",
                fix="train one with `iclscope train gate --out DIR` and pass that DIR",
            )
        gate = cls(**json.loads((folder / "gate.json").read_text()))
        gate.load_state_dict(torch.load(folder / "gate.pt", weights_only=True))
        return gate.eval()


def eviction_rate(
    flags: Float[Tensor, "layer batch head pos"], context: Bool[Tensor, "batch pos"]
) -> Tensor:
    """Mean share of context keys evicted (differentiable through straight-through flags)."""
    ctx = context[None, :, None].to(flags.dtype)
    return ((1 - flags) * ctx).sum() / (ctx.sum() * flags.shape[0] * flags.shape[2])
