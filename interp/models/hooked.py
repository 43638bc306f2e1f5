"""Hooked models: one hook vocabulary over two backends.

``load_model(spec, backend)`` returns a :class:`HookedModel`. Both backends speak
TransformerLens hook names (``blocks.{l}.attn.hook_z``, ``blocks.{l}.hook_resid_pre``, ...), so
an analysis never needs to know which one it runs on:

* ``transformer_lens``: a TransformerLens 4 ``TransformerBridge`` (the full vocabulary,
  ``start_at_layer``, gradients);
* ``nnsight``: an nnsight ``TransformersModel`` over the unconverted Hugging Face model, with
  the hook names mapped onto module inputs and outputs (see :mod:`interp.nnsight_backend`).

``spec`` is a registered name (``smollm2``, ``gemma3-270m``, ``organism``, ...; see
:mod:`interp.models.registry`), a local Hugging Face folder, or a hub name (only where the hub is
reachable).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import IclscopeError
from interp.models.evict import (
    EvictFrom,
    apply_flags,
    call_flag_hooks,
    evict_names,
    split_evict_hooks,
)
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


class TransformerLensModel(HookedModel):
    """The TransformerLens 4 backend: a ``TransformerBridge`` in eval mode."""

    backend: Backend = "transformer_lens"

    def __init__(self, bridge, tokenizer, cfg: ModelConfig, path: str) -> None:
        self.bridge = bridge.eval()
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.path = path
        self._names: list[str] | None = None

    @property
    def hf_model(self):
        return self.bridge.original_model

    def plain_model(self):
        if getattr(self, "_plain", None) is None:
            from transformers import AutoModelForCausalLM

            self._plain = (
                AutoModelForCausalLM.from_pretrained(
                    self.path, dtype=self.hf_model.dtype, attn_implementation="sdpa"
                )
                .to(self.hf_model.device)
                .eval()
            )
        return self._plain

    def hook_names(self) -> list[str]:
        if self._names is None:
            # the bridge's cache holds the TransformerLens aliases (hook_z ...) that hook_dict
            # lacks, so list what a one-token forward caches
            with torch.no_grad():
                _, cache = self.bridge.run_with_cache(torch.zeros(1, 1, dtype=torch.long))
            # the injection point sits right after each hook_z
            inject = lambda n: [n, n.removesuffix("hook_z") + "hook_task_inject"]
            self._names = [m for n in cache for m in (inject(n) if _is_z(n) else [n])]
            self._names += evict_names(self.cfg.n_layers)  # applied through hook_attn_scores
        return self._names

    def run_with_hooks(self, tokens, fwd_hooks=(), attention_mask=None):
        for name, _ in fwd_hooks:
            self.check_hook(name)
        fwd_hooks = self._evict_as_scores(fwd_hooks)
        return self.bridge.run_with_hooks(
            tokens, fwd_hooks=alias_task_inject(fwd_hooks), attention_mask=attention_mask
        )

    def _evict_as_scores(self, fwd_hooks):
        """``hook_evict_flags`` hooks become one ``hook_attn_scores`` hook per layer that
        masks the evicted keys (see :mod:`interp.models.evict`)."""
        rest, by_layer = split_evict_hooks(fwd_hooks)
        for layer, fns in by_layer.items():

            def mask(scores, hook, layer=layer, fns=fns):
                flags = call_flag_hooks(
                    layer, fns, scores.shape[0], scores.shape[1], scores.shape[-1], scores.device
                )
                return apply_flags(scores, flags, self.evict_from)

            rest.append((f"blocks.{layer}.attn.hook_attn_scores", mask))
        return rest

    supports_resume = True

    def run_from_layer(self, resid, layer, fwd_hooks=(), attention_mask=None):
        self.check_layer(layer)
        for name, _ in fwd_hooks:
            self.check_hook(name)
        fwd_hooks = self._evict_as_scores(fwd_hooks)
        return self.bridge.run_with_hooks(
            resid,
            fwd_hooks=alias_task_inject(fwd_hooks),
            start_at_layer=layer,
            attention_mask=attention_mask,
        )


def resolve_spec(spec: str) -> tuple[str, bool]:
    """``(path_or_name, is_local)`` for a model spec, or a clear error.

    A registered name (``iclscope models``) resolves to its folder, converting a GGUF model on
    first use; otherwise ``spec`` must be a local Hugging Face folder, or a hub name where the
    hub is reachable. Offline, anything else is refused at once with the nearest names.
    """
    from interp.models.files import check_model_folder, repair_hint
    from interp.models.registry import MODELS, get_entry, suggest

    if spec in MODELS:
        folder = get_entry(spec).materialize()
        check_model_folder(folder, fix=repair_hint(spec, folder))  # damaged files, named
        return str(folder), True
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise IclscopeError(
                f"{spec} is a folder but not a Hugging Face model (no config.json)",
                fix="point at the folder holding config.json, the weights and the tokenizer",
            )
        check_model_folder(path, fix=repair_hint(spec, path))
        return str(path), True
    names = ", ".join(MODELS)
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec and spec.count("/") > 1
    if looks_like_path or path.exists() or not spec.strip():
        raise IclscopeError(
            f"unknown model path {spec!r}: no such folder",
            fix=f"pass a registered model ({names}) or an existing local Hugging Face folder",
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    typo = "/" not in spec and suggest(spec, MODELS)  # a near-miss of a registered name
    if offline or typo:
        raise IclscopeError(
            f"unknown model {spec!r}: not a registered name, not a local folder"
            + (", and HF_HUB_OFFLINE is set so the hub is not tried" if offline else ""),
            fix=f"{suggest(spec, MODELS)}use one of {names} (see `iclscope models`) or a "
            "local Hugging Face folder",
        )
    return spec, False


def load_model(
    spec: str = "organism",
    backend: Backend = "transformer_lens",
    device: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> HookedModel:
    """Load a causal LM as a :class:`HookedModel`.

    ``spec``: a registered name (``iclscope models``), a local Hugging Face folder, or a hub
    name (online only).
    ``backend``: ``"transformer_lens"`` or ``"nnsight"``; both expose the same hook names.
    """
    from transformers import AutoConfig, AutoTokenizer

    where, _ = resolve_spec(spec)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        hf_config = AutoConfig.from_pretrained(where)
        tokenizer = AutoTokenizer.from_pretrained(where)
    except OSError as err:
        raise IclscopeError(
            f"could not load model {spec!r}: {err}".split("\n")[0],
            fix="check the name, your network, or pass a local Hugging Face folder",
        ) from err
    cfg = ModelConfig.from_hf(spec, hf_config)
    if backend == "transformer_lens":
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(
            where, device=device, dtype=dtype, tokenizer=tokenizer
        )
        return TransformerLensModel(bridge, tokenizer, cfg, where)
    if backend == "nnsight":
        from interp.models.nnsight_backend import NNsightModel

        return NNsightModel.load(where, tokenizer, cfg, device, dtype)
    raise IclscopeError(f"unknown backend {backend!r}", fix="use 'transformer_lens' or 'nnsight'")
