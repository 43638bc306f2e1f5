"""A hook-aware forward over a Hugging Face decoder, run with the model's own modules, that can
start at any layer and any position.

This is the engine's fast path. Each decoder layer runs as Hugging Face wrote it, so norms,
rotary or learned positions, QK-norm, sandwich norms, soft-capping and sliding windows are the
model's own code; :mod:`interp.models.decoder_parts` says where the hook points sit among its
modules, and :mod:`interp.models.attention` is the one seam inside a layer (the scores and the
mixed values). A forward resumes in two ways:

* at layer ``l``: feed the cached ``hook_resid_pre`` of layer ``l``; earlier layers are skipped;
* at position ``p``: a patch at position ``p`` cannot change anything before ``p`` (attention is
  causal), so only the suffix ``p..`` is computed, attending to the prefix's cached keys and
  values, passed as the model's own cache object (a ``DynamicCache``), as in generation.

Rows may join a running batch at the layer where they start, so one pass serves rows with
different starting layers. The last layer runs its keys and values over the suffix but
everything else only where the logits are read, and the unembedding only there too. Hook names
follow TransformerLens; activations are suffix-only, so a hook at position ``t`` of the prompt
sees it at ``t - p``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from interp.models import attention
from interp.models.decoder_parts import DecoderParts

Hooks = dict[str, Callable[[Tensor, object], Tensor | None]]


@dataclass
class Recording:
    """What a full forward of the base prompts leaves behind for resuming."""

    resid_pre: list[Tensor] = field(default_factory=list)  # per layer (batch, pos, d_model)
    keys: list[Tensor] = field(default_factory=list)  # per layer (batch, kv, pos, d_head), roped
    values: list[Tensor] = field(default_factory=list)
    cache: dict[str, Tensor] = field(default_factory=dict)


class _Stop(Exception):
    """Ends a module call early once what was wanted of it is in hand."""


class _Ref:
    def __init__(self, name: str) -> None:
        self.name = name


@dataclass
class _Pass:
    """What the attention and the module hooks of one driven call need to know."""

    hooks: Hooks
    record: Recording | None
    offset: int = 0
    """Keys before the first query: the cached prefix's length."""
    given_z: Tensor | None = None
    """A layer's tail alone: the attention's output is given, not computed."""
    capture: bool = False
    """Take the keys and values and stop (the last layer's first half)."""
    kv: tuple[Tensor, Tensor] | None = None
    read_at: Tensor | None = None
    """The last layer's second half: one query per row at these suffix positions."""
    n_pos: int = 0
    mid_delta: Tensor | None = None
    """An edit of ``hook_resid_mid``, to add to the layer's output (see ``_on_mid``)."""


def _at_read(fn, read_at: Tensor, n_pos: int):
    """A hook written for the whole suffix, run on the read positions only: scatter them into a
    zero buffer of the full shape, hook, gather back. Edits elsewhere land in the buffer and
    vanish, which is right: in the last layer they cannot reach ``read_at``."""

    def at_read(act: Tensor, ref) -> Tensor:
        rows = torch.arange(act.shape[0], device=act.device)
        full = act.new_zeros((act.shape[0], n_pos, *act.shape[2:]))
        full[rows, read_at] = act[:, 0]
        out = fn(full, ref)
        return (full if out is None else out)[rows, read_at][:, None]

    return at_read


class ModuleForward:
    """The forward pass of a Hugging Face decoder, with resume points and hooks."""

    def __init__(self, hf) -> None:
        attention.register()
        self.hf = hf
        self.parts = DecoderParts.find(hf)
        self.n_layers = len(self.parts.layers)
        cfg = hf.config
        self.n_heads = cfg.num_attention_heads
        self._pass: _Pass | None = None

    # -- hooks ------------------------------------------------------------------------------
    def _hook(self, name: str, act: Tensor) -> Tensor:
        st = self._pass
        fn = st.hooks.get(name)
        if fn is not None:
            out = fn(act, _Ref(name))
            act = act if out is None else out
        if st.record is not None and name in st.record.cache:
            st.record.cache[name] = act.detach().clone()
        return act

    def _on_output(self, name: str):
        def hook(module, args, output):
            first = output[0] if isinstance(output, tuple) else output
            new = self._hook(name, first)
            if new is first:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return hook

    def _on_mid(self, name: str):
        """``hook_resid_mid`` is the input of the norm (or MLP) after attention. Editing that
        input alone would leave the residual the layer adds back unedited, so the edit's
        difference is also added to the layer's output: ``mid' + mlp(norm(mid'))`` exactly."""

        def hook(module, args):
            new = self._hook(name, args[0])
            if new is args[0]:
                return None
            self._pass.mid_delta = new - args[0]
            return (new, *args[1:])

        return hook

    def _module_hooks(self, wanted: set[str]) -> list:
        """Torch hooks on the modules whose hook points this call uses, and no others."""
        handles = []
        for layer, parts in enumerate(self.parts.per_layer):
            outputs = (("hook_attn_out", parts.attn_out), ("hook_mlp_out", parts.mlp_out))
            for kind, module in outputs:
                name = f"blocks.{layer}.{kind}"
                if name in wanted:
                    handles.append(module.register_forward_hook(self._on_output(name)))
            name = f"blocks.{layer}.hook_resid_mid"
            if name in wanted and parts.mlp_in is not None:
                handles.append(parts.mlp_in.register_forward_pre_hook(self._on_mid(name)))
        return handles

    @contextmanager
    def _driving(self, hooks: Hooks, record: Recording | None = None) -> Iterator[_Pass]:
        """The model runs our attention and our hooks for the duration, and only then."""
        st = _Pass(hooks, record)
        wanted = set(hooks) | (set(record.cache) if record is not None else set())
        handles = self._module_hooks(wanted)
        config = self.hf.config
        before, outer = config._attn_implementation, self._pass
        config._attn_implementation = attention.IMPLEMENTATION
        token = attention.DRIVER.set(self)
        self._pass = st
        try:
            yield st
        finally:
            self._pass = outer
            attention.DRIVER.reset(token)
            config._attn_implementation = before
            for handle in handles:
                handle.remove()

    # -- attention --------------------------------------------------------------------------
    def attend(self, layer, q, k, v, scale, window, softcap) -> Tensor:
        """Called by the model's attention module with its roped queries and keys (the prefix's
        keys already joined); returns ``z`` (b, s, heads, d_head) after ``hook_z``."""
        st = self._pass
        if st.capture:
            st.kv = (k, v)
            raise _Stop
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        if st.given_z is not None:
            z = st.given_z
        else:
            if st.read_at is not None:
                k, v = st.kv
                query_at = (st.read_at + st.offset)[:, None]
            else:
                query_at = torch.arange(q.shape[2], device=q.device) + st.offset
            z = self._mix(layer, q, k, v, query_at, scale, window, softcap).transpose(1, 2)
        z = self._hook(f"blocks.{layer}.attn.hook_z", z)
        return self._hook(f"blocks.{layer}.attn.hook_task_inject", z)

    def _mix(self, layer, q, k, v, query_at, scale, window, softcap) -> Tensor:
        st, t = self._pass, k.shape[2]
        name = f"blocks.{layer}.attn.hook_attn_scores"
        wants_scores = name in st.hooks or (st.record is not None and name in st.record.cache)
        causal = query_at.dim() == 1 and st.offset == 0 and window is None
        if not wants_scores and softcap is None:
            plain = causal and t == q.shape[2]
            allowed = None if plain else attention.allowed_keys(query_at, t, window)
            return attention.fused(q, k, v, allowed, scale)
        allowed = attention.allowed_keys(query_at, t, window)
        k, v = attention.per_query_head(k, self.n_heads), attention.per_query_head(v, self.n_heads)
        s = attention.scores(q, k, scale, softcap).masked_fill(~allowed, float("-inf"))
        if name in st.hooks and st.read_at is not None:  # the hook sees every suffix position
            rows = torch.arange(q.shape[0], device=q.device)
            full = s.new_zeros((q.shape[0], q.shape[1], st.n_pos, t))
            full[rows, :, st.read_at] = s[:, :, 0]
            s = self._hook(name, full)[rows, :, st.read_at][:, :, None]
        else:
            s = self._hook(name, s)
        return torch.softmax(s.float(), dim=-1).to(v.dtype) @ v

    # -- layers -----------------------------------------------------------------------------
    def _positions(self, like: Tensor, position_ids: Tensor):
        """Each layer type's rotary embedding at ``position_ids`` (``None`` without rotary)."""
        rotary = self.parts.rotary
        if rotary is None:
            return None
        if self.parts.rotary_by_type:
            return {t: rotary(like, position_ids, t) for t in set(self.parts.layer_types)}
        return rotary(like, position_ids)

    def _call(self, layer: int, h: Tensor, pe, position_ids: Tensor, cache) -> Tensor:
        """The model's own decoder layer ``layer`` on ``h``; then any ``hook_resid_mid`` edit's
        difference and ``hook_resid_post``."""
        if pe is not None and self.parts.rotary_by_type:
            pe = pe[self.parts.layer_types[layer]]
        out = self.parts.layers[layer](
            h,
            attention_mask=None,
            position_embeddings=pe,
            position_ids=position_ids,
            **{self.parts.cache_kwarg: cache},
        )
        out = out[0] if isinstance(out, tuple) else out
        st = self._pass
        if st.mid_delta is not None:
            out, st.mid_delta = out + st.mid_delta, None
        return self._hook(f"blocks.{layer}.hook_resid_post", out)

    def _layer(self, layer: int, h: Tensor, pe, position_ids: Tensor, cache) -> Tensor:
        h = self._hook(f"blocks.{layer}.hook_resid_pre", h)
        if self._pass.record is not None:
            self._pass.record.resid_pre.append(h.detach().clone())
        return self._call(layer, h, pe, position_ids, cache)

    def _last_layer(self, h, pe, position_ids, cache, read_at: Tensor, start: int) -> Tensor:
        """The last layer computed only where the logits are read: keys and values for every
        suffix position (the layer's first half, stopped at its attention), then the layer again
        for one position per row, attending to those keys."""
        layer, st = self.n_layers - 1, self._pass
        h = self._hook(f"blocks.{layer}.hook_resid_pre", h)
        st.capture = True
        try:
            self._call(layer, h, pe, position_ids, cache)
        except _Stop:
            pass
        st.capture = False
        rows = torch.arange(h.shape[0], device=h.device)
        at = h[rows, read_at][:, None]
        read_ids = (read_at + start)[:, None]
        prefix = f"blocks.{layer}."
        # the scores are scattered by the attention itself (their positions are the keys')
        st.hooks = {
            name: _at_read(fn, read_at, h.shape[1])
            if name.startswith(prefix) and not name.endswith("hook_attn_scores")
            else fn
            for name, fn in st.hooks.items()
        }
        st.read_at, st.n_pos = read_at, h.shape[1]
        return self._call(layer, at, self._positions(at, read_ids), read_ids, None)[:, 0]

    # -- the runs ---------------------------------------------------------------------------
    def embed(self, tokens: Tensor) -> Tensor:
        """The first layer's input as the model's own forward makes it (scaled embeddings,
        learned positions and all): the base model runs until its first layer is called."""
        got = {}

        def grab(module, args, kwargs):
            got["h"] = args[0] if args else kwargs["hidden_states"]
            raise _Stop

        handle = self.parts.layers[0].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self.parts.base(input_ids=tokens, use_cache=False)
        except _Stop:
            pass
        finally:
            handle.remove()
        return got["h"]

    @torch.no_grad()
    def record(
        self,
        tokens: Tensor,
        names: list[str],
        hooks: Hooks | None = None,
        read_at: Tensor | None = None,
    ) -> tuple[Tensor, Recording]:
        """A full forward of ``tokens``; returns the logits (at ``read_at``, one position per
        row, where given) and a :class:`Recording` with every layer's keys and values."""
        from transformers import DynamicCache

        rec = Recording(cache=dict.fromkeys(names))
        h = self.embed(tokens)
        position_ids = torch.arange(tokens.shape[1], device=h.device)[None]
        cache = DynamicCache()
        with self._driving(hooks or {}, rec):
            pe = self._positions(h, position_ids)
            for layer in range(self.n_layers):
                h = self._layer(layer, h, pe, position_ids, cache)
        rec.keys = [cache.layers[i].keys for i in range(self.n_layers)]
        rec.values = [cache.layers[i].values for i in range(self.n_layers)]
        if read_at is not None:
            h = h[torch.arange(h.shape[0]), read_at]
        return self.logits(h), rec

    @torch.no_grad()
    def tail(self, layer: int, h: Tensor, z: Tensor, hooks: Hooks, record=None) -> Tensor:
        """Everything in ``layer`` after attention has mixed positions: ``hook_z``, the output
        projection, the MLP. It acts on each position alone, so it runs on any subset of
        positions (the engine runs it where an edit after the mixing lands, nowhere else). The
        layer's own modules run with the attention's output given as ``z``."""
        with self._driving(hooks, record) as st:
            st.given_z = z
            position_ids = torch.arange(h.shape[1], device=h.device)[None]
            return self._call(layer, h, self._positions(h, position_ids), position_ids, None)

    def _prefix_cache(self, joins, first: int, start_pos: int, prefix_rows: Tensor, rec):
        """The prefix's keys and values as a ``DynamicCache``: each layer holds the rows that
        run through it (rows join at their start layer, so later layers hold more)."""
        from transformers import DynamicCache

        if not start_pos:
            return None
        rows_at, n = [], 0
        pending = [(layer, states.shape[0]) for layer, states in joins]
        for layer in range(self.n_layers):
            while pending and pending[0][0] == layer:
                n += pending.pop(0)[1]
            rows = prefix_rows[:n]
            rows_at.append(
                (rec.keys[layer][rows, :, :start_pos], rec.values[layer][rows, :, :start_pos])
                if layer >= first
                else (None, None)
            )
        return DynamicCache(ddp_cache_data=rows_at)

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
        first, like = joins[0][0], joins[0][1]
        position_ids = torch.arange(start_pos, start_pos + like.shape[1], device=like.device)[None]
        cache = self._prefix_cache(joins, first, start_pos, prefix_rows, rec)
        pending, h = list(joins), None
        with self._driving(hooks) as st:
            st.offset = start_pos
            pe = self._positions(like, position_ids)
            for layer in range(first, self.n_layers):
                while pending and pending[0][0] == layer:
                    entering = pending.pop(0)[1]
                    h = entering if h is None else torch.cat([h, entering])
                if layer < self.n_layers - 1:
                    h = self._layer(layer, h, pe, position_ids, cache)
                else:
                    return self.logits(
                        self._last_layer(h, pe, position_ids, cache, read_at, start_pos)
                    )
        raise ValueError("resume needs rows that join at or before the last layer")

    def logits(self, h: Tensor) -> Tensor:
        out = self.parts.unembed(self.parts.final_norm(h))
        cap = self.parts.logit_softcap
        return out if cap is None else torch.tanh(out / cap) * cap
