"""Reproducible training of the ICL model organism on CPU.

The schedule is set by a wall-clock budget (cosine decay over ``minutes``), so the same command
finishes on time on a slower machine; the number of steps reached is recorded. The loss covers
every token (it brings the ICL phase change much earlier than answer-only loss, see
ORGANISM_NOTES.md), with answer and demonstration-label tokens weighted up.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from interp.organism.data import sample_training_batch
from interp.organism.evaluate import evaluate_organism
from interp.organism.tokenizer import save_tokenizer
from interp.prompts import PromptBuilder


@dataclass
class TrainConfig:
    seed: int = 0
    minutes: float = 70.0
    max_steps: int | None = None
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int = 4
    d_mlp: int = 384
    n_ctx: int = 512
    lr: float = 2e-3
    warmup: int = 200
    decay_from: float = 0.6
    """Fraction of the budget at constant peak lr before the cosine decay (to 10%) starts:
    the ICL phase change needs steps at full learning rate."""
    weight_decay: float = 0.05
    tokens_per_batch: int = 6000
    eval_every_minutes: float = 10.0
    final_eval_n: int = 200
    log_every: int = 50
    threads: int = 2
    init: str | None = None
    """A trained organism folder to continue from (its record is chained into this one)."""


def _decay(progress: float, start: float) -> float:
    """1 until ``start``, then a cosine from 1 down to 0.1 at the end of the budget."""
    if progress <= start:
        return 1.0
    t = (progress - start) / max(1e-9, 1 - start)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(t, 1.0)))


def _chain(init_record: dict | None) -> dict | None:
    """What a continued run started from: the earlier run's config, steps, time, loss curve and
    evaluations (and, recursively, what that run continued)."""
    if init_record is None:
        return None
    keep = (
        "config",
        "steps",
        "wall_seconds",
        "loss_curve",
        "evals",
        "final_eval",
        "continued_from",
    )
    return {k: init_record.get(k) for k in keep}


def model_config(cfg: TrainConfig, vocab_size: int, tokenizer) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=cfg.n_ctx,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def train(out: Path, cfg: TrainConfig, log=print) -> dict:
    """Train, then write a Hugging Face folder (config, safetensors, tokenizer) and
    ``training_record.json`` (seed, steps, loss curve, wall time, evaluation) into ``out``."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = save_tokenizer(out)
    if cfg.init:
        model = LlamaForCausalLM.from_pretrained(cfg.init, dtype=torch.float32)
        init_record = json.loads((Path(cfg.init) / "training_record.json").read_text())
    else:
        model = LlamaForCausalLM(model_config(cfg, len(tokenizer), tokenizer))
        init_record = None
    model.config.use_cache = False
    builder = PromptBuilder(tokenizer, n_ctx=cfg.n_ctx)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        weight_decay=0.0,
    )
    n_params = sum(p.numel() for p in model.parameters())
    log(f"training a {n_params / 1e6:.2f}M-parameter Llama for {cfg.minutes} minutes -> {out}")
    budget = cfg.minutes * 60
    start = time.time()
    next_eval = cfg.eval_every_minutes * 60
    curve, evals, step, ema = [], [], 0, None
    while True:
        elapsed = time.time() - start
        if elapsed >= budget or (cfg.max_steps is not None and step >= cfg.max_steps):
            break
        progress = elapsed / budget if cfg.max_steps is None else step / cfg.max_steps
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * _decay(progress, cfg.decay_from)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = sample_training_batch(builder, rng, cfg.tokens_per_batch)
        model.train()
        logits = model(input_ids=batch.tokens).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            batch.tokens[:, 1:].reshape(-1),
            reduction="none",
        ).view_as(batch.weights)
        loss = (nll * batch.weights).sum() / batch.weights.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % cfg.log_every == 0:
            curve.append({"step": step, "seconds": round(elapsed, 1), "loss": round(ema, 4)})
            log(f"step {step:6d}  {elapsed / 60:5.1f} min  loss {ema:.4f}  lr {lr:.2e}")
        if elapsed >= next_eval:
            next_eval += cfg.eval_every_minutes * 60
            model.eval()
            quick = evaluate_organism(model, tokenizer, n=100)
            quick.pop("function_tasks_per_task")
            evals.append({"step": step, "minutes": round(elapsed / 60, 1), **quick})
            log(f"eval at step {step}: {json.dumps(quick)}")
            model.save_pretrained(str(out))  # a checkpoint to fall back on
    wall = time.time() - start
    model.eval()
    final = evaluate_organism(model, tokenizer, n=cfg.final_eval_n)
    model.save_pretrained(str(out))
    prev = init_record or {}
    record = {
        "config": asdict(cfg),
        "parameters": n_params,
        "steps": step,
        "wall_seconds": round(wall, 1),
        "continued_from": _chain(init_record),
        "total_steps": step + prev.get("total_steps", prev.get("steps", 0)),
        "total_wall_seconds": round(
            wall + prev.get("total_wall_seconds", prev.get("wall_seconds", 0)), 1
        ),
        "torch": torch.__version__,
        "loss_curve": curve,
        "evals": evals,
        "final_eval": final,
    }
    (out / "training_record.json").write_text(json.dumps(record, indent=1))
    log(f"done: {step} steps in {wall / 60:.1f} min; final eval {json.dumps(final)}")
    return record
