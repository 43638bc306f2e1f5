"""Tiny random models, built from a config in a second, for tests and quick experiments.

Both follow the architectures iclscope keeps working: GPT-2 style (learned positions,
LayerNorm, fused QKV) and Llama style (RoPE, RMSNorm, grouped-query attention). They share the
organism's word-level tokenizer, so every prompt family renders on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from interp.organism.tokenizer import save_tokenizer


def build_tiny_model(
    out: str | Path, arch: Literal["gpt2", "llama"] = "llama", seed: int = 0, n_layers: int = 2
) -> Path:
    """Write a randomly initialised Hugging Face folder (config, safetensors, tokenizer)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = save_tokenizer(out)
    ids = dict(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    torch.manual_seed(seed)
    if arch == "gpt2":
        config = GPT2Config(
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
        model = GPT2LMHeadModel(config)
    elif arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=n_layers,
            num_attention_heads=8,
            num_key_value_heads=4,
            max_position_embeddings=512,
            tie_word_embeddings=False,
            **ids,
        )
        model = LlamaForCausalLM(config)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}: use 'gpt2' or 'llama'")
    model.save_pretrained(str(out))
    return out
