"""The hooked-model interface: what every analysis sees, whichever backend runs the model.

:class:`HookedModel` speaks TransformerLens hook names (``blocks.{l}.attn.hook_z``,
``blocks.{l}.hook_resid_pre``, ...), so an analysis never needs to know which backend it runs
on. This module is the bottom layer: it imports no backend and no loader. The backends
(:mod:`interp.models.transformer_lens_backend`, :mod:`interp.models.nnsight_backend`) build on
it, and :mod:`interp.models.loader` alone picks between them (interface < backends < loader).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import IclscopeError
from interp.prompts import PromptBuilder

Backend = Literal["transformer_lens", "nnsight"]
HookFn = Callable[..., Tensor | None]
"""A forward hook ``fn(activation, hook) -> activation | None``, as in TransformerLens;
``hook.name`` is the hook's name. Returning a tensor replaces the activation."""
FwdHooks = Sequence[tuple[str, HookFn]]
Cache = dict[str, Tensor]
"""Activations by hook name, each ``(batch, ...)`` as TransformerLens shapes them."""


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a model, the same whatever the backend."""

    name: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    n_ctx: int
    d_vocab: int
    d_mlp: int | None = None
    """The MLP's hidden width (``intermediate_size``; ``None`` where the config does not say:
    GPT-2 leaves ``n_inner`` unset for 4 x ``d_model``)."""

    @classmethod
    def from_hf(cls, name: str, hf) -> ModelConfig:
        def get(*keys, default=None):
            for k in keys:
                if getattr(hf, k, None) is not None:
                    return getattr(hf, k)
            return default

        n_heads = get("num_attention_heads", "n_head")
        d_model = get("hidden_size", "n_embd")
        return cls(
            name=name,
            architecture=hf.model_type,
            n_layers=get("num_hidden_layers", "n_layer"),
            n_heads=n_heads,
            n_kv_heads=get("num_key_value_heads", default=n_heads),
            d_head=get("head_dim", default=d_model // n_heads),
            d_model=d_model,
            n_ctx=get("max_position_embeddings", "n_positions", "n_ctx"),
            d_vocab=hf.vocab_size,
            d_mlp=get("intermediate_size", "n_inner"),
        )


class HookRef:
    """What a hook function receives as ``hook``: enough to know where it is."""

    def __init__(self, name: str) -> None:
        self.name = name
        parts = name.split(".")
        self.layer = int(parts[1]) if parts[0] == "blocks" else None

    def __repr__(self) -> str:
        return f"HookRef({self.name!r})"


class _CacheComplete(Exception):
    """Raised by ``run_with_cache(..., logits=False)``'s last saver to end the forward early."""


class EvictFrom:
    """The mixin behind ``model.evict_from`` and ``model.evicting_from``."""

    evict_from: int | Tensor = 0

    @contextlib.contextmanager
    def evicting_from(self, start: int | Tensor) -> Iterator[None]:
        """Apply eviction flags only to query rows at or after ``start`` in this block."""
        before = self.evict_from
        self.evict_from = start
        try:
            yield
        finally:
            self.evict_from = before


class HookedModel(EvictFrom, ABC):
    """A causal LM with TransformerLens hook names, whichever backend runs it."""

    backend: Backend
    cfg: ModelConfig
    tokenizer: object
    path: str

    @abstractmethod
    def hook_names(self) -> list[str]:
        """Every hook point this backend exposes, in execution order."""

    @abstractmethod
    def run_with_hooks(
        self,
        tokens: Int[Tensor, "batch pos"],
        fwd_hooks: FwdHooks = (),
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Run forward with hooks that may read or replace activations; return logits."""

    supports_resume: bool = False
    """Whether :meth:`run_from_layer` can start a forward pass at a middle layer."""

    def run_from_layer(
        self,
        resid: Float[Tensor, "batch pos d_model"],
        layer: int,
        fwd_hooks: FwdHooks = (),
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Run layers ``layer..`` on a residual stream ``resid`` (``hook_resid_pre`` of
        ``layer``) with hooks; the engine resumes cached runs this way."""
        raise NotImplementedError(f"the {self.backend} backend cannot start at a middle layer")

    def run_with_cache(
        self,
        tokens: Int[Tensor, "batch pos"],
        names_filter: Callable[[str], bool] | Sequence[str] | str | None = None,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        logits: bool = True,
    ) -> tuple[Float[Tensor, "batch pos d_vocab"] | None, Cache]:
        """Run forward and return the logits and the activations whose names pass the filter.

        ``logits=False`` stops the forward as soon as every asked-for activation is cached and
        returns ``None`` for the logits: the layers after the last of them and the unembedding
        (a fifth of a small model's work, over a 49k-262k vocabulary) are never run."""
        names = [n for n in self.hook_names() if _matches(names_filter, n)]
        cache: Cache = {}

        def saver(name: str) -> HookFn:
            # keyed by the name asked for: TransformerLens reports an alias's canonical name
            def save(act: Tensor, hook) -> None:
                cache[name] = act.detach().clone()
                if not logits and len(cache) == len(names):
                    raise _CacheComplete

            return save

        with torch.no_grad():
            try:
                out = self.run_with_hooks(tokens, [(n, saver(n)) for n in names], attention_mask)
            except _CacheComplete:
                out = None
        return out, cache

    def __call__(self, tokens, attention_mask=None) -> Float[Tensor, "batch pos d_vocab"]:
        with torch.no_grad():
            return self.run_with_hooks(tokens, (), attention_mask)

    @property
    @abstractmethod
    def hf_model(self):
        """The underlying Hugging Face model (shared weights, no hooks)."""

    def plain_model(self):
        """The model as Hugging Face runs it, with no hook wrappers: the engine's fast path and
        the benchmark floor use it. The bridge wraps every module of its ``hf_model``, so for
        TransformerLens a second, unwrapped copy is loaded once (weights held twice)."""
        return self.hf_model

    @torch.no_grad()
    def logit_lens(self, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
        """Read a residual-stream state out through the final norm and the unembedding."""
        base = self.hf_model.base_model
        norm = getattr(base, "norm", None) or base.ln_f
        return self.hf_model.get_output_embeddings()(norm(resid))

    def prompt_builder(self, padding_side: Literal["left", "right"] = "right", **kw):
        """A :class:`PromptBuilder` that refuses prompts longer than this model's context."""
        from interp.models.gguf_cache import prepend_bos

        kw.setdefault("prepend_bos", prepend_bos(self.path))
        return PromptBuilder(self.tokenizer, n_ctx=self.cfg.n_ctx, padding_side=padding_side, **kw)

    def check_layer(self, layer: int) -> int:
        if not 0 <= layer < self.cfg.n_layers:
            raise IclscopeError(
                f"layer {layer} is out of range for {self.cfg.name} ({self.cfg.n_layers} layers)",
                fix=f"use a layer from 0 to {self.cfg.n_layers - 1}",
            )
        return layer

    def check_head(self, layer: int, head: int) -> tuple[int, int]:
        self.check_layer(layer)
        if not 0 <= head < self.cfg.n_heads:
            raise IclscopeError(
                f"head {head} is out of range for {self.cfg.name} ({self.cfg.n_heads} heads)",
                fix=f"use a head from 0 to {self.cfg.n_heads - 1}",
            )
        return layer, head

    def check_hook(self, name: str) -> str:
        if name not in set(self.hook_names()):
            layer = HookRef(name).layer if name.startswith("blocks.") else None
            if layer is not None:
                self.check_layer(layer)
            raise IclscopeError(
                f"no hook point {name!r} on the {self.backend} backend",
                fix="list the available names with model.hook_names()",
            )
        return name


TASK_INJECT = "attn.hook_task_inject"
"""Soft injection of task embeddings (Park & Rhee): the input of the output projection, like
``hook_z``, visited right after it, so an analysis can patch ``z`` and inject into it at once."""


def alias_task_inject(fwd_hooks: FwdHooks) -> list[tuple[str, HookFn]]:
    """``hook_task_inject`` hooks run on their layer's ``hook_z`` site, after its own hooks
    (backends whose modules have no separate point for it)."""
    hooks = list(fwd_hooks)
    z = [(n, f) for n, f in hooks if not n.endswith(TASK_INJECT)]
    inject = [
        (n.removesuffix(TASK_INJECT) + "attn.hook_z", f)
        for n, f in hooks
        if n.endswith(TASK_INJECT)
    ]
    return z + inject


def _is_z(name: str) -> bool:
    return name.startswith("blocks.") and name.endswith(".attn.hook_z")


def _matches(names_filter, name: str) -> bool:
    if names_filter is None:
        return True
    if isinstance(names_filter, str):
        return name == names_filter
    if callable(names_filter):
        return bool(names_filter(name))
    return name in names_filter
