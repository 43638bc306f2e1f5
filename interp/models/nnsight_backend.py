"""The nnsight backend: TransformerLens hook names over an unconverted Hugging Face model.

Each hook name is a *site*: a module input or output in the nnsight trace, plus the reshape
that gives it TransformerLens's shape (``hook_z`` is the input of the output projection split
into heads). Inside one ``trace`` the sites are visited in execution order, because nnsight
runs the body alongside the model and refuses to go back in time.

``hook_pattern`` is read from eager attention's weights; it can be cached but not edited here
(editing attention needs the TransformerLens backend or the engine's score masks).

Like the TransformerLens backend it builds on :mod:`interp.models.interface` and
:mod:`interp.models.evict` only; :mod:`interp.models.loader` picks it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from interp.errors import IclscopeError
from interp.models.evict import EVICT_HOOK, call_flag_hooks, flag_attention_mask
from interp.models.interface import (
    TASK_INJECT,
    Backend,
    HookedModel,
    HookRef,
    ModelConfig,
    alias_task_inject,
)

# Per architecture: the module paths nnsight walks (relative to the top model).
_ARCH = {
    "llama": dict(
        layers="model.layers",
        embed="model.embed_tokens",
        norm="model.norm",
        attn="self_attn",
        out_proj="self_attn.o_proj",
        q="self_attn.q_proj",
        k="self_attn.k_proj",
        v="self_attn.v_proj",
        ln2="post_attention_layernorm",
        mlp="mlp",
        unembed="lm_head",
    ),
    "gpt2": dict(
        layers="transformer.h",
        embed="transformer.wte",
        norm="transformer.ln_f",
        attn="attn",
        out_proj="attn.c_proj",
        qkv="attn.c_attn",
        ln2="ln_2",
        mlp="mlp",
        unembed="lm_head",
    ),
}
for _alias in ("mistral", "qwen2", "qwen3"):
    _ARCH[_alias] = _ARCH["llama"]
# Gemma 3's sandwich norms: a sublayer's contribution to the residual is its post-norm's output
_ARCH["gemma3_text"] = dict(
    _ARCH["llama"],
    ln2="pre_feedforward_layernorm",
    attn_out="post_attention_layernorm",
    mlp="post_feedforward_layernorm",
)


def _with_evict(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The eviction flags are read when the attention module is entered, before its q."""
    return (kinds[0], EVICT_HOOK, *kinds[1:])


# Per-layer hook kinds in execution order.
_LAYER_HOOKS = (
    "hook_resid_pre",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_z",
    TASK_INJECT,
    "hook_attn_out",
    "attn.hook_pattern",
    "hook_resid_mid",
    "hook_mlp_out",
    "hook_resid_post",
)


def _walk(root, path: str):
    for part in path.split("."):
        root = getattr(root, part)
    return root


@dataclass
class _Site:
    """Where a hook lives in the trace and how to view it with TransformerLens's shape."""

    module: object
    attr: str  # "input" or "output"
    index: int | None = None  # element of a tuple output
    split: tuple[int, int] | None = None  # (heads, d_head): view the last dim as heads
    qkv: int | None = None  # GPT-2 fused c_attn: which third

    def read(self) -> Tensor:
        value = getattr(self.module, self.attr)
        if self.index is not None:
            value = value[self.index]
        if self.qkv is not None:
            value = value.chunk(3, dim=-1)[self.qkv]
        if self.split is not None:
            value = value.view(*value.shape[:-1], *self.split)
        return value

    def write(self, new: Tensor) -> None:
        if self.qkv is not None or self.attr == "output" and self.index is not None:
            raise IclscopeError(
                "this hook point is read-only on the nnsight backend",
                fix="edit it with backend='transformer_lens'",
            )
        if self.split is not None:
            new = new.reshape(*new.shape[:-2], -1)
        setattr(self.module, self.attr, new)


class NNsightModel(HookedModel):
    backend: Backend = "nnsight"

    def __init__(self, nn_model, tokenizer, cfg: ModelConfig, path: str) -> None:
        self.nn = nn_model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.path = path
        if cfg.architecture not in _ARCH:
            raise IclscopeError(
                f"the nnsight backend does not map hook names for {cfg.architecture!r} models",
                fix=f"use backend='transformer_lens', or one of {sorted(_ARCH)}",
            )
        self.arch = _ARCH[cfg.architecture]
        self._order = {n: i for i, n in enumerate(self.hook_names())}

    @classmethod
    def load(cls, where: str, tokenizer, cfg: ModelConfig, device: str, dtype) -> NNsightModel:
        from nnsight import TransformersModel

        # eager attention exposes the pattern; sdpa would hide it
        nn_model = TransformersModel(
            where,
            task="text-generation",
            dispatch=True,
            attn_implementation="eager",
            tokenizer=tokenizer,
            device_map=device,
            dtype=dtype,
        )
        nn_model._module.eval()
        return cls(nn_model, tokenizer, cfg, where)

    @property
    def hf_model(self):
        return self.nn._module

    def hook_names(self) -> list[str]:
        names = ["hook_embed"]
        for layer in range(self.cfg.n_layers):
            names += [f"blocks.{layer}.{kind}" for kind in _with_evict(_LAYER_HOOKS)]
        return names + ["ln_final.hook_normalized"]

    def _site(self, name: str) -> _Site:
        a, cfg = self.arch, self.cfg
        if name == "hook_embed":
            return _Site(_walk(self.nn, a["embed"]), "output")
        if name == "ln_final.hook_normalized":
            return _Site(_walk(self.nn, a["norm"]), "output")
        ref = HookRef(name)
        layer = _walk(self.nn, a["layers"])[ref.layer]
        kind = name.split(".", 2)[2]
        if kind == "hook_resid_pre":
            return _Site(layer, "input")
        if kind == "hook_resid_post":
            return _Site(layer, "output")
        if kind == "hook_resid_mid":
            return _Site(_walk(layer, a["ln2"]), "input")
        if kind == "hook_mlp_out":
            return _Site(_walk(layer, a["mlp"]), "output")
        if kind == "attn.hook_z":
            return _Site(_walk(layer, a["out_proj"]), "input", split=(cfg.n_heads, cfg.d_head))
        if kind == "hook_attn_out":
            return _Site(_walk(layer, a.get("attn_out", a["out_proj"])), "output")
        if kind == "attn.hook_pattern":
            return _Site(_walk(layer, a["attn"]), "output", index=1)
        heads = cfg.n_heads if kind == "attn.hook_q" else cfg.n_kv_heads
        if "qkv" in a:
            which = ("attn.hook_q", "attn.hook_k", "attn.hook_v").index(kind)
            return _Site(_walk(layer, a["qkv"]), "output", split=(heads, cfg.d_head), qkv=which)
        return _Site(_walk(layer, a[kind[-1]]), "output", split=(heads, cfg.d_head))

    def _mask_evicted(self, name: str, fns: list, tokens: Tensor) -> None:
        """Eviction flags as a per-head key mask: the attention module's additive mask
        argument, widened to (batch, head, q, k) (see :mod:`interp.models.evict`)."""
        ref = HookRef(name)
        attn = _walk(_walk(self.nn, self.arch["layers"])[ref.layer], self.arch["attn"])
        args, kwargs = attn.inputs
        b, n = tokens.shape
        flags = call_flag_hooks(ref.layer, fns, b, self.cfg.n_heads, n, tokens.device)
        mask = flag_attention_mask(kwargs.get("attention_mask"), flags, self.evict_from, n)
        attn.inputs = (args, {**kwargs, "attention_mask": mask})

    def run_with_hooks(self, tokens, fwd_hooks=(), attention_mask=None):
        for name, _ in fwd_hooks:
            self.check_hook(name)
        by_name: dict[str, list] = {}
        for name, fn in alias_task_inject(fwd_hooks):  # one site, visited once per trace
            by_name.setdefault(name, []).append(fn)
        ordered = sorted(by_name, key=self._order.__getitem__)
        if attention_mask is None:
            attention_mask = torch.ones_like(tokens)
        result: dict[str, Tensor] = {}
        with self.nn.trace(tokens, attention_mask=attention_mask):
            for name in ordered:
                if name.endswith(EVICT_HOOK):
                    self._mask_evicted(name, by_name[name], tokens)
                    continue
                site = self._site(name)
                value = site.read()
                replaced = False
                for fn in by_name[name]:
                    out = fn(value, HookRef(name))
                    if out is not None:
                        value, replaced = out, True
                if replaced:
                    site.write(value)
            result["logits"] = _walk(self.nn, self.arch["unembed"]).output
        return result["logits"]
