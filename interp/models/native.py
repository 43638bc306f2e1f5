"""A hook-aware forward over a Hugging Face Llama that can start at any layer and position.

This is the engine's fast path. It runs the model's own modules (norms, projections, MLP), so
it adds no per-call framework overhead, and it can resume a forward pass in two ways:

* at layer ``l``: feed the cached ``hook_resid_pre`` of layer ``l``; earlier layers are skipped;
* at position ``p``: a patch at position ``p`` cannot change anything before ``p`` (attention is
  causal), so only the suffix ``p..`` is computed, attending to the cached keys and values of
  the prefix.

Rows may join a running batch at the layer where they start, so one pass serves rows with
different starting layers. Hook names follow TransformerLens; activations are suffix-only, so a
hook at position ``t`` of the prompt sees it at ``t - p``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

NATIVE_HOOKS = (
    "hook_resid_pre",
    "attn.hook_attn_scores",
    "attn.hook_z",
    "attn.hook_task_inject",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_out",
    "hook_resid_post",
)
NATIVE_ARCHITECTURES = ("llama", "mistral", "qwen2")

Hooks = dict[str, Callable[[Tensor, object], Tensor | None]]


@dataclass
class Recording:
    """What a full forward of the base prompts leaves behind for resuming."""

    resid_pre: list[Tensor] = field(default_factory=list)  # per layer (batch, pos, d_model)
    keys: list[Tensor] = field(default_factory=list)  # per layer (batch, kv, pos, d_head), roped
    values: list[Tensor] = field(default_factory=list)
    cache: dict[str, Tensor] = field(default_factory=dict)


def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding, Hugging Face's rotate-half convention, of ``x`` (b, heads, s, d) with
    ``cos``/``sin`` (b or 1, s, d): ``x·cos + rotate_half(x)·sin`` as two in-place multiply-adds
    on the halves, sparing the concatenation and negation a literal rotate_half allocates."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)
    out[..., half:].addcmul_(x[..., :half], sin[..., half:])
    return out


class _Ref:
    def __init__(self, name: str) -> None:
        self.name = name


class LlamaNative:
    """The forward pass of a Hugging Face Llama-family model, with resume points and hooks."""

    def __init__(self, hf) -> None:
        self.hf = hf
        base = hf.model
        self.layers, self.norm, self.embed, self.rotary = (
            base.layers,
            base.norm,
            base.embed_tokens,
            base.rotary_emb,
        )
        cfg = hf.config
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.scale = self.layers[0].self_attn.scaling
        # a SiLU-gated MLP runs with its activation and gating in place (two buffers fewer)
        self.gated_silu = hasattr(self.layers[0].mlp, "gate_proj") and cfg.hidden_act == "silu"

    @staticmethod
    def supports(hooks: list[str], architecture: str) -> bool:
        kinds = {h.split(".", 2)[2] for h in hooks if h.startswith("blocks.")}
        return architecture in NATIVE_ARCHITECTURES and kinds <= set(NATIVE_HOOKS)

    def _hook(self, hooks: Hooks, name: str, act: Tensor, record: Recording | None) -> Tensor:
        fn = hooks.get(name)
        if fn is not None:
            out = fn(act, _Ref(name))
            act = act if out is None else out
        if record is not None and name in record.cache:
            record.cache[name] = act.detach().clone()
        return act

    def _keys_values(self, k: Tensor, v: Tensor, prefix) -> tuple[Tensor, Tensor]:
        """Prepend the cached prefix keys/values (KV heads, not yet expanded per query head)."""
        if prefix is not None:
            k = torch.cat([prefix[0], k], dim=2)
            v = torch.cat([prefix[1], v], dim=2)
        return k, v

    def _per_query_head(self, kv: Tensor) -> Tensor:
        group = self.n_heads // self.n_kv
        return kv.repeat_interleave(group, dim=1) if group > 1 else kv

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None) -> Tensor:
        """Softmax attention of ``q`` (b, heads, s, d) over KV heads ``k``/``v`` (b, kv, t, d);
        ``allowed`` (..., s, t) is a boolean mask, ``None`` meaning causal with t == s.

        On CUDA this is SDPA's fused kernel. On CPU, at these small head sizes, two batched
        matmuls beat SDPA: each KV head's query group is folded into one matmul (sparing the
        copy that expanding K/V per query head would make), and the scale and the mask ride
        in the first matmul's multiply-add (``baddbmm``) instead of passes of their own."""
        if q.is_cuda:
            k, v = self._per_query_head(k), self._per_query_head(v)
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, is_causal=allowed is None, scale=self.scale
            )
        b, h, s, d = q.shape
        group, t = h // self.n_kv, k.shape[2]
        if allowed is None:
            allowed = torch.ones(s, t, dtype=torch.bool, device=q.device).tril()
        # the mask as an additive bias over (KV head, query group * position, key)
        bias = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill_(~allowed, float("-inf"))
        if bias.dim() == 4:  # (b, 1, s, t): one mask per row, shared by every head
            bias = bias[:, :, None].expand(b, self.n_kv, group, s, t).reshape(-1, group * s, t)
        else:
            bias = bias.repeat(group, 1)
        # one fused multiply-add gives the scaled, masked scores in a single pass
        scores = torch.baddbmm(
            bias,
            q.reshape(b * self.n_kv, group * s, d),
            k.reshape(b * self.n_kv, t, d).transpose(1, 2),
            alpha=self.scale,
        )
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
        return (probs @ v.reshape(b * self.n_kv, t, d)).view(b, h, s, d)

    def _mix(self, layer: int, x, cos, sin, prefix, hooks, record) -> Tensor:
        """The attention mixing of ``layer``: ``z`` (b, pos, head, d_head), before ``hook_z``."""
        attn = self.layers[layer].self_attn
        b, s, _ = x.shape
        q = attn.q_proj(x).view(b, s, self.n_heads, self.d_head).transpose(1, 2)
        k = attn.k_proj(x).view(b, s, self.n_kv, self.d_head).transpose(1, 2)
        v = attn.v_proj(x).view(b, s, self.n_kv, self.d_head).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        if record is not None:
            record.keys.append(k)
            record.values.append(v)
        k, v = self._keys_values(k, v, prefix)
        offset = k.shape[2] - s
        name = f"blocks.{layer}.attn.hook_attn_scores"
        allowed = None
        if offset or name in hooks:
            rows = torch.arange(s, device=x.device)[:, None] + offset
            allowed = torch.arange(k.shape[2], device=x.device)[None, :] <= rows
        if name in hooks:
            k, v = self._per_query_head(k), self._per_query_head(v)
            scores = (q @ k.transpose(-1, -2)) * self.scale
            scores = scores.masked_fill(~allowed, float("-inf"))
            scores = self._hook(hooks, name, scores, record)
            z = torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v
        else:
            z = self._attend(q, k, v, allowed)
        return z.transpose(1, 2)

    def tail(self, layer: int, h: Tensor, z: Tensor, hooks: Hooks, record=None) -> Tensor:
        """Everything in ``layer`` after attention has mixed positions: ``hook_z``, the output
        projection, the MLP. It acts on each position alone, so it can run on any subset of
        positions (the engine runs it where an edit after the mixing lands, nowhere else)."""
        block = self.layers[layer]
        z = self._hook(hooks, f"blocks.{layer}.attn.hook_z", z, record)
        z = self._hook(hooks, f"blocks.{layer}.attn.hook_task_inject", z, record)
        out = block.self_attn.o_proj(z.reshape(*z.shape[:2], -1))
        h = h + self._hook(hooks, f"blocks.{layer}.hook_attn_out", out, record)
        h = self._hook(hooks, f"blocks.{layer}.hook_resid_mid", h, record)
        mlp = self._mlp(block.mlp, block.post_attention_layernorm(h))
        h = h + self._hook(hooks, f"blocks.{layer}.hook_mlp_out", mlp, record)
        return self._hook(hooks, f"blocks.{layer}.hook_resid_post", h, record)

    def _mlp(self, mlp, x: Tensor) -> Tensor:
        if not self.gated_silu:
            return mlp(x)
        gate = F.silu(mlp.gate_proj(x), inplace=True)
        return mlp.down_proj(gate.mul_(mlp.up_proj(x)))

    def layer(self, layer: int, h, cos, sin, prefix, hooks: Hooks, record=None) -> Tensor:
        block = self.layers[layer]
        h = self._hook(hooks, f"blocks.{layer}.hook_resid_pre", h, record)
        if record is not None:
            record.resid_pre.append(h.detach().clone())
        z = self._mix(layer, block.input_layernorm(h), cos, sin, prefix, hooks, record)
        return self.tail(layer, h, z, hooks, record)

    @staticmethod
    def _at_read(fn, read_at: Tensor, n_pos: int):
        """A hook written for the whole suffix, run on the read positions only: scatter them
        into a zero buffer of the full shape, hook, gather back. Edits elsewhere land in the
        buffer and vanish, which is right: in the last layer they cannot reach ``read_at``."""

        def at_read(act: Tensor, ref) -> Tensor:
            rows = torch.arange(act.shape[0], device=act.device)
            full = act.new_zeros((act.shape[0], n_pos, *act.shape[2:]))
            full[rows, read_at] = act[:, 0]
            out = fn(full, ref)
            return (full if out is None else out)[rows, read_at][:, None]

        return at_read

    def last_layer(self, h, cos, sin, prefix, hooks: Hooks, read_at: Tensor) -> Tensor:
        """The last layer computed only where the logits are read: keys and values for every
        position, but queries, attention output and MLP at ``read_at`` alone."""
        layer = len(self.layers) - 1
        block, attn = self.layers[layer], self.layers[layer].self_attn
        b, s, _ = h.shape
        rows = torch.arange(b, device=h.device)
        h = self._hook(hooks, f"blocks.{layer}.hook_resid_pre", h, None)
        x = block.input_layernorm(h)
        k = attn.k_proj(x).view(b, s, self.n_kv, self.d_head).transpose(1, 2)
        v = attn.v_proj(x).view(b, s, self.n_kv, self.d_head).transpose(1, 2)
        q = attn.q_proj(x[rows, read_at][:, None]).view(b, 1, self.n_heads, self.d_head)
        q = q.transpose(1, 2)
        cos_q, sin_q = cos[0, read_at][:, None], sin[0, read_at][:, None]
        q, k = _rope(q, cos_q, sin_q), _rope(k, cos, sin)
        k, v = self._keys_values(k, v, prefix)
        offset = k.shape[2] - s
        allowed = torch.arange(k.shape[2], device=h.device)[None, :] <= (read_at + offset)[:, None]
        allowed = allowed[:, None, None, :]
        name = f"blocks.{layer}.attn.hook_attn_scores"
        if name in hooks:
            k, v = self._per_query_head(k), self._per_query_head(v)
            scores = ((q @ k.transpose(-1, -2)) * self.scale).masked_fill(~allowed, float("-inf"))
            full = scores.new_zeros((b, self.n_heads, s, k.shape[2]))
            full[rows, :, read_at] = scores[:, :, 0]
            scores = self._hook(hooks, name, full, None)[rows, :, read_at][:, :, None]
            z = torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v
        else:
            z = self._attend(q, k, v, allowed)
        at_read = {
            name: self._at_read(fn, read_at, s)
            for name, fn in hooks.items()
            if name.startswith(f"blocks.{layer}.")
        }
        return self.tail(layer, h[rows, read_at][:, None], z.transpose(1, 2), at_read)[:, 0]

    def rope(self, start: int, length: int, like: Tensor) -> tuple[Tensor, Tensor]:
        positions = torch.arange(start, start + length, device=like.device)[None]
        return self.rotary(like, positions)

    @torch.no_grad()
    def record(self, tokens: Tensor, names: list[str], hooks: Hooks | None = None):
        """A full forward of ``tokens``; returns logits and a :class:`Recording`."""
        rec = Recording(cache=dict.fromkeys(names))
        h = self.embed(tokens)
        cos, sin = self.rope(0, tokens.shape[1], h)
        for layer in range(len(self.layers)):
            h = self.layer(layer, h, cos, sin, None, hooks or {}, rec)
        return self.logits(h), rec

    @torch.no_grad()
    def resume(
        self,
        joins: list[tuple[int, Tensor]],
        start_pos: int,
        prefix_rows: Tensor,
        rec: Recording,
        hooks: Hooks,
        read_at: Tensor,
    ) -> Tensor:
        """Run rows that join at given layers, over positions ``start_pos..``.

        ``joins``: ``(layer, resid)`` in row order, layers ascending, each ``resid`` the
        ``(rows, suffix, d_model)`` state those rows enter with. ``prefix_rows`` picks each row's
        base prompt in ``rec`` for the prefix keys/values. Returns logits at ``read_at``
        (suffix-relative position per row).
        """
        h = None
        first = joins[0][0]
        length = joins[0][1].shape[1]
        cos, sin = self.rope(start_pos, length, joins[0][1])
        pending = list(joins)
        last = len(self.layers) - 1
        for layer in range(first, last + 1):
            while pending and pending[0][0] == layer:
                entering = pending.pop(0)[1]
                h = entering if h is None else torch.cat([h, entering])
            prefix = None
            if start_pos:
                rows = prefix_rows[: h.shape[0]]
                prefix = (
                    rec.keys[layer][rows, :, :start_pos],
                    rec.values[layer][rows, :, :start_pos],
                )
            if layer < last:
                h = self.layer(layer, h, cos, sin, prefix, hooks)
            else:
                return self.logits(self.last_layer(h, cos, sin, prefix, hooks, read_at))
        raise ValueError("resume needs rows that join at or before the last layer")

    def logits(self, h: Tensor) -> Tensor:
        return self.hf.lm_head(self.norm(h))
