"""The TransformerLens backend: :class:`HookedModel` over a TransformerLens 4 ``TransformerBridge``.

The full hook vocabulary, ``start_at_layer`` and gradients. It builds on
:mod:`interp.models.interface` and :mod:`interp.models.evict` only; :mod:`interp.models.loader`
boots the bridge and constructs it.
"""

from __future__ import annotations

import torch

from interp.models.evict import apply_flags, call_flag_hooks, evict_names, split_evict_hooks
from interp.models.interface import (
    Backend,
    HookedModel,
    ModelConfig,
    _is_z,
    alias_task_inject,
)


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

            load = lambda impl: AutoModelForCausalLM.from_pretrained(
                self.path, dtype=self.hf_model.dtype, attn_implementation=impl
            )
            try:
                plain = load("sdpa")
            except ValueError:  # architectures without SDPA (Gemma 2) run eager attention
                plain = load("eager")
            self._plain = plain.to(self.hf_model.device).eval()
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
