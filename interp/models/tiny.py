"""Tiny random models, built from a config in a second, for tests and quick experiments.

One per decoder layout iclscope drives: GPT-2 (learned positions, LayerNorm, fused QKV), Llama
(RoPE, RMSNorm, grouped-query attention), Mistral and Qwen 2 (sliding windows, QKV biases),
Qwen 3 (QK-norm), Gemma 2 (sandwich norms, soft-capping, alternating sliding windows), Gemma 3
(QK-norm, scaled embeddings, local and global rotary bases), GPT-NeoX (partial rotary, a
parallel residual), Gemma 1, Phi-3 (fused projections), OLMo (clipped QKV, norms without
weights) and OLMo 2 (norms after attention and MLP, none before). They share the organism's
word-level tokenizer, so every prompt family renders on them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from interp.organism.tokenizer import save_tokenizer

TINY_ARCHITECTURES = (
    "gpt2",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3",
    "gpt_neox",
    "gemma",
    "phi3",
    "olmo",
    "olmo2",
)

# the shared shape: 64 wide, 8 query heads over 4 KV heads where the architecture groups them
_ROPE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=8,
    num_key_value_heads=4,
    max_position_embeddings=512,
    tie_word_embeddings=False,
)
# windows shorter than the test prompts, so the sliding masks matter
_CONFIGS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=6)),
    "qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(use_sliding_window=True, sliding_window=6, max_window_layers=1),
    ),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=16)),
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        dict(
            head_dim=16,
            sliding_window=6,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=3.0,
            query_pre_attn_scalar=16,
        ),
    ),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        dict(head_dim=16, sliding_window=6, query_pre_attn_scalar=16, sliding_window_pattern=2),
    ),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(head_dim=16)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(resid_pdrop=0.0, embd_pdrop=0.0)),
    "olmo": ("OlmoConfig", "OlmoForCausalLM", dict(clip_qkv=4.0)),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", {}),
    "gpt_neox": (
        "GPTNeoXConfig",
        "GPTNeoXForCausalLM",
        dict(
            num_key_value_heads=None,
            rotary_pct=0.5,
            use_parallel_residual=True,
            hidden_dropout=0.0,
            attention_dropout=0.0,
        ),
    ),
}


def build_tiny_model(
    out: str | Path, arch: str = "llama", seed: int = 0, n_layers: int = 2
) -> Path:
    """Write a randomly initialised Hugging Face folder (config, safetensors, tokenizer)."""
    import transformers

    if arch != "gpt2" and arch not in _CONFIGS:
        raise ValueError(f"unknown tiny architecture {arch!r}: use one of {TINY_ARCHITECTURES}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = save_tokenizer(out)
    ids = dict(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    torch.manual_seed(seed)
    if arch == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=len(tok),
            n_positions=512,
            n_embd=64,
            n_layer=n_layers,
            n_head=4,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **ids,
        )
        model = transformers.GPT2LMHeadModel(config)
    else:
        config_name, model_name, extra = _CONFIGS[arch]
        settings = {**_ROPE, **extra}
        settings = {k: v for k, v in settings.items() if v is not None}
        config = getattr(transformers, config_name)(
            vocab_size=len(tok), num_hidden_layers=n_layers, **settings, **ids
        )
        model = getattr(transformers, model_name)(config)
        _perturb_norms(model)
    model.save_pretrained(str(out))
    return out


@torch.no_grad()
def _perturb_norms(model) -> None:
    """Norm weights start at one (or zero, for Gemma's ``1 + w``), which would hide a norm run
    in the wrong place; random weights make every norm count."""
    for name, param in model.named_parameters():
        if "norm" in name and param.dim() == 1:
            param.add_(0.3 * torch.randn_like(param))
