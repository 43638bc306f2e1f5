"""``iclscope bench kernels``: the patch kernel's bandwidth, and the hooks' share of a forward.

Two measurements on one device (CUDA when present, else the CPU and the torch twin):

* **bandwidth**: one ``patch_or_mix`` call over a ``(batch, pos, head, d_head)`` activation, each
  row patching one head (a head sweep) or every head at every position, from a bank of source
  rows. The call reads the activation's edited slice and the source slice and writes the slice
  back, three slices of traffic; a device-to-device copy of the whole activation (one read, one
  write) is the yardstick. A patch kernel that streams as well as a copy reaches 1.0.
* **hook cost**: a random Llama of GPT-2-small size (12 layers, d_model 768, 12 heads, d_mlp
  3072), its module forward over ``batch`` rows with a head patch at every layer's ``hook_z``
  in every row, against the same forward with no hooks. The difference, as a percentage of the
  forward, is what the engine's hooks cost.

The fused kernel's output is compared with its torch twin's on the same inputs, so the
numbers come with a correctness check. A command that prints numbers, not a test.
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp import kernels
from interp.bench.timing import interleaved
from interp.errors import IclscopeError
from interp.models.module_forward import ModuleForward

SIZES = {
    "small": dict(n_layers=12, d_model=768, n_heads=12, d_mlp=3072, vocab=50257),
    "tiny": dict(n_layers=2, d_model=64, n_heads=4, d_mlp=128, vocab=256),
}
"""``small`` is GPT-2 small's shape; ``tiny`` runs in a second anywhere (for tests)."""


def _sweep_edits(batch: int, n_pos: int, n_heads: int, n_src: int, every_head: bool, device):
    """Index columns for one call: row ``r`` patches head ``r % n_heads`` (or all heads, -1) at
    every position, from source row ``r % n_src`` at the same position."""
    rows = torch.arange(batch, device=device).repeat_interleave(n_pos)
    positions = torch.arange(n_pos, device=device).repeat(batch)
    heads = torch.full_like(rows, -1) if every_head else rows % n_heads
    src = rows % n_src
    alpha = torch.ones(rows.numel(), device=device)
    return rows, positions, heads, src, positions, alpha


def bandwidth(
    batch: int, n_pos: int, n_heads: int, d_head: int, device, dtype, repeats: int
) -> dict:
    """Achieved bandwidth of one patch call against a copy, for one head and all heads a row."""
    gen = torch.Generator(device=device).manual_seed(0)
    act = torch.randn(batch, n_pos, n_heads, d_head, device=device, dtype=dtype, generator=gen)
    n_src = 16
    bank = torch.randn(n_src, n_pos, n_heads, d_head, device=device, dtype=dtype, generator=gen)
    scratch = torch.empty_like(act)
    widths = {"one_head": False, "all_heads": True}
    edits = {
        name: _sweep_edits(batch, n_pos, n_heads, n_src, every, device)
        for name, every in widths.items()
    }
    times, _ = interleaved(
        {
            "copy": lambda: scratch.copy_(act),
            **{
                name: (lambda e=e: kernels.patch_or_mix(act, bank, *e)) for name, e in edits.items()
            },
        },
        repeats,
        device,
    )
    copy_rate = 2 * act.numel() * act.element_size() / times["copy"]
    out = {"copy_gb_per_s": copy_rate / 1e9}
    for name, every_head in widths.items():
        t = times[name]
        moved = 3 * batch * n_pos * (n_heads if every_head else 1) * d_head * act.element_size()
        fused, twin = act.clone(), act.clone()
        kernels.patch_or_mix(fused, bank, *edits[name])
        kernels.patch_or_mix_torch(twin, bank, *edits[name])
        out[name] = {
            "seconds": t,
            "gb_per_s": moved / t / 1e9,
            "fraction_of_copy": moved / t / copy_rate,
            "max_abs_diff_vs_twin": float((fused.float() - twin.float()).abs().max()),
        }
    out["kernel"] = "triton" if kernels.use_triton(act) else "torch twin"
    return out


def random_llama(size: str, device, dtype):
    """A randomly initialised Hugging Face Llama of the named size, on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    s = SIZES[size]
    config = LlamaConfig(
        vocab_size=s["vocab"],
        hidden_size=s["d_model"],
        intermediate_size=s["d_mlp"],
        num_hidden_layers=s["n_layers"],
        num_attention_heads=s["n_heads"],
        num_key_value_heads=s["n_heads"],
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()


@torch.no_grad()
def hook_cost(size: str, batch: int, n_pos: int, device, dtype, repeats: int) -> dict:
    """The module forward with a head patch at every layer, against the same forward bare."""
    hf = random_llama(size, device, dtype)
    native = ModuleForward(hf)
    cfg = hf.config
    n_heads, d_head = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    tokens = torch.randint(0, cfg.vocab_size, (batch, n_pos), device=device)
    bank = torch.randn(16, n_pos, n_heads, d_head, device=device, dtype=dtype)
    edits = _sweep_edits(batch, n_pos, n_heads, 16, False, device)

    def patch(act: Tensor, hook) -> Tensor:
        return kernels.patch_or_mix(act, bank, *edits)

    hooks = {f"blocks.{layer}.attn.hook_z": patch for layer in range(cfg.num_hidden_layers)}
    read_at = torch.full((batch,), n_pos - 1, device=device)

    def forward(with_hooks: bool):
        h = native.embed(tokens)
        return native.resume([(0, h)], 0, None, None, hooks if with_hooks else {}, read_at)

    times, _ = interleaved(
        {"bare": lambda: forward(False), "hooked": lambda: forward(True)}, repeats, device
    )
    bare, hooked = times["bare"], times["hooked"]
    return {
        "size": size,
        "rows": batch,
        "positions": n_pos,
        "layers": cfg.num_hidden_layers,
        "forward_seconds": bare,
        "hooked_seconds": hooked,
        "hook_percent_of_forward": 100 * (hooked - bare) / bare,
    }


def bench_kernels(
    device: str | None = None,
    size: str | None = None,
    batch: int | None = None,
    positions: int | None = None,
    dtype: str = "float32",
    repeats: int = 10,
) -> dict:
    """Both measurements; on CUDA the defaults are the issue's (GPT-2 small, batch 256, 128
    positions), on CPU a size two cores finish in seconds."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise IclscopeError(
            "--device cuda was asked for but no CUDA GPU is visible",
            fix="run on a machine with a GPU, or pass --device cpu",
        )
    on_gpu = dev.type == "cuda"
    size = size or ("small" if on_gpu else "tiny")
    if size not in SIZES:
        raise IclscopeError(f"unknown size {size!r}", fix=f"use one of {', '.join(SIZES)}")
    batch = batch or (256 if on_gpu else 32)
    positions = positions or (128 if on_gpu else 64)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(dtype)
    if torch_dtype is None:
        raise IclscopeError(f"unknown dtype {dtype!r}", fix="use float32 or bfloat16")
    s = SIZES[size]
    d_head = s["d_model"] // s["n_heads"]
    return {
        "device": torch.cuda.get_device_name(dev) if on_gpu else "cpu",
        "dtype": dtype,
        "bandwidth": bandwidth(batch, positions, s["n_heads"], d_head, dev, torch_dtype, repeats),
        "hook_cost": hook_cost(size, batch, positions, dev, torch_dtype, repeats),
    }
