"""Training the attention gate with the model frozen: two objectives.

* ``distill`` (attention distillation): one forward pass of the frozen model per batch, no
  backward pass through it. The target of layer ``l``, head ``h``, key ``j`` is whether ``j`` is
  in the top ``1 - target_rate`` of the context by the attention the *final rows* (the query
  line, decoded after eviction) pay it; the gate, which sees only tokens up to ``j``, learns to
  predict that with a binary cross-entropy. The prefill states are computed once and reused
  every epoch, so an epoch costs the gates' forward and backward only.
* ``end-to-end`` (Zeng et al.): the flags (straight-through) mask the frozen model's attention
  after the prefill, and the loss is the answer's cross-entropy plus ``lam`` times the squared
  gap between the measured eviction rate and the target; gradients flow through the model's
  attention into the gates. Every step is a forward and backward pass of the model.

Both return a training record (losses, measured rates, seconds) that is saved with the gate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from circuits.eviction.apply import key_masks, prefill
from circuits.eviction.gate import GateStack, eviction_rate
from interp.errors import IclscopeError, Interrupted
from interp.prompts import PromptBatch
from interp.stops import deferred_stops, layer_modules, stop_points

OBJECTIVES = ("distill", "end-to-end")


@dataclass
class GateExample:
    """One chunk of prompts, prefilled once: what both objectives train on."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    answers: Int[Tensor, " batch"]
    start: int
    context: Bool[Tensor, "batch pos"]
    real: Bool[Tensor, "batch pos"]
    hidden: list[Tensor]  # per layer (batch, pos, d_model), bfloat16 to halve memory
    targets: Float[Tensor, "layer batch head pos"]  # 1 = the final rows need this key


def final_start(batch: PromptBatch) -> int:
    """First final row of a left-padded batch: where the earliest query line starts."""
    if batch.padding_side != "left":
        raise IclscopeError("eviction prompts must be left-padded", fix="padding_side='left'")
    return min(a.x_q[0] for a in batch.annotations)


def future_attention(pre, layer: int) -> Float[Tensor, "batch head pos"]:
    """Mean attention of the final rows to each key in ``layer``: what decoding will read."""
    return pre.patterns[layer][:, :, pre.start :].mean(-2)


SHARPNESS = 10.0


def percentile(
    scores: Float[Tensor, "batch head pos"], context: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "batch head pos"]:
    """Each context key's rank among its row's context keys, scaled to [0, 1] (1 = the most
    attended); 0 outside the context."""
    ranked = scores.masked_fill(~context[:, None], float("-inf"))
    order = ranked.argsort(dim=-1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1]).expand_as(order).contiguous())
    n_ctx = context.sum(-1)[:, None, None]
    below = rank - (context.shape[-1] - n_ctx)  # non-context keys sort first
    return (below.float() / (n_ctx - 1).clamp_min(1)).clamp(0, 1) * context[:, None]


def soft_target(scores, context, rate: float) -> Float[Tensor, "batch head pos"]:
    """``sigmoid(SHARPNESS * (percentile - rate))``: monotone in the key's rank, so the top
    budget by the trained ``g`` approximates the top budget by attention at *any* rate, and
    crossing 0.5 at the ``rate`` percentile, so the threshold ``tau = 0.5`` evicts ``rate``."""
    return torch.sigmoid(SHARPNESS * (percentile(scores, context) - rate))


@torch.no_grad()
def gate_examples(hf, batch: PromptBatch, rate: float, chunk: int = 8) -> list[GateExample]:
    """Prefill ``batch`` in chunks and keep states plus distillation targets."""
    out = []
    chunk = max(1, min(chunk, chunk * 512 // batch.tokens.shape[1]))
    for i in range(0, len(batch), chunk):
        toks, mask = batch.tokens[i : i + chunk], batch.attention_mask[i : i + chunk]
        start = min(a.x_q[0] for a in batch.annotations[i : i + chunk])
        pre = prefill(hf, toks, mask, start, cache=False)
        targets = torch.stack(
            [
                soft_target(future_attention(pre, l), pre.context, rate)
                for l in range(len(pre.hidden))
            ]
        )
        out.append(
            GateExample(
                toks,
                mask,
                batch.answer_ids[i : i + chunk],
                start,
                pre.context,
                pre.queries,
                [h.to(torch.bfloat16) for h in pre.hidden],
                targets,
            )
        )
    return out


def distill_loss(gate: GateStack, ex: GateExample) -> tuple[Tensor, Tensor]:
    """Binary cross-entropy of the gates' logits against the targets, over context keys;
    and the measured eviction rate at ``tau``."""
    hidden = [h.float() for h in ex.hidden]
    logits = torch.stack([g.logits(h, ex.real) for g, h in zip(gate.gates, hidden)])
    ctx = ex.context[None, :, None].expand_as(logits)
    loss = F.binary_cross_entropy_with_logits(logits[ctx], ex.targets[ctx])
    with torch.no_grad():
        rate = eviction_rate((torch.sigmoid(logits) >= gate.tau).float(), ex.context)
    return loss, rate


def end_to_end_loss(hf, gate: GateStack, ex: GateExample, lam: float) -> tuple[Tensor, Tensor]:
    """Answer cross-entropy through the frozen model with the gate's straight-through flags,
    plus ``lam * (rate - target)^2``."""
    flags = gate.flags([h.float() for h in ex.hidden], ex.context, ex.real)
    with key_masks(hf, flags, ex.start):
        logits = hf(input_ids=ex.tokens, attention_mask=ex.attention_mask, logits_to_keep=1).logits
    rate = eviction_rate(flags, ex.context)
    lm = F.cross_entropy(logits[:, -1].float(), ex.answers)
    return lm + lam * (rate - gate.target_rate) ** 2, rate.detach()


def train_gate(
    hf,
    gate: GateStack,
    examples: list[GateExample],
    objective: str = "distill",
    epochs: int = 20,
    lr: float = 3e-3,
    lam: float = 10.0,
    seed: int = 0,
    log: Callable[[str], object] = print,
    max_seconds: float | None = None,
) -> dict:
    """Train ``gate`` in place on prefilled ``examples``; return the training record.

    Its ``status`` is ``complete``, ``time limit`` or ``interrupted``. On Ctrl-C or SIGTERM
    the gate keeps the optimiser steps done (a step is never half applied), and the
    :class:`~interp.errors.Interrupted` raised again carries the record as ``stop.record``
    (``stopped`` says at which epoch and step), for the caller to save. A stop waits for at
    most one layer's backward (:func:`~interp.stops.stop_points`; end to end, the backward runs
    through the whole frozen model)."""
    if objective not in OBJECTIVES:
        raise IclscopeError(f"unknown objective {objective!r}", fix=f"use one of {OBJECTIVES}")
    torch.manual_seed(seed)
    for p in hf.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(gate.parameters(), lr=lr)
    order = list(range(len(examples)))
    rng = random.Random(seed)
    steps: list[dict] = []
    state = {"epoch": 0, "steps_done": 0, "status": "complete"}
    t0 = time.perf_counter()

    def record(stopped: dict | None = None) -> dict:
        return dict(
            objective=objective,
            target_rate=gate.target_rate,
            tau=gate.tau,
            lr=lr,
            lam=lam if objective == "end-to-end" else None,
            seed=seed,
            status=state["status"],
            stopped=stopped,
            epochs_run=len(steps),
            steps_done=state["steps_done"],
            prompts=sum(len(e.tokens) for e in examples),
            history=steps,
            seconds=round(time.perf_counter() - t0, 2),
        )

    gate.train()
    try:
        with stop_points(layer_modules(hf) + list(gate.gates)):
            for epoch in range(epochs):
                state["epoch"] = epoch
                rng.shuffle(order)
                losses, rates = [], []
                for i in order:
                    ex = examples[i]
                    if objective == "distill":
                        loss, rate = distill_loss(gate, ex)
                    else:
                        loss, rate = end_to_end_loss(hf, gate, ex, lam)
                    opt.zero_grad()
                    loss.backward()
                    with deferred_stops():  # never half the parameters updated
                        opt.step()
                        state["steps_done"] += 1
                    losses.append(float(loss.detach()))
                    rates.append(float(rate))
                elapsed = time.perf_counter() - t0
                step = dict(
                    epoch=epoch,
                    loss=sum(losses) / len(losses),
                    rate=sum(rates) / len(rates),
                    seconds=round(elapsed, 2),
                )
                steps.append(step)
                log(
                    f"epoch {epoch + 1}/{epochs}: loss {step['loss']:.4f}, eviction rate "
                    f"{step['rate']:.3f} (target {gate.target_rate}), {elapsed:.0f} s"
                )
                if max_seconds is not None and elapsed > max_seconds:
                    log(f"stopping: {elapsed:.0f} s is past the {max_seconds:.0f} s budget")
                    state["status"] = "time limit"
                    break
    except Interrupted as stop:
        state["status"] = "interrupted"
        stop.record = record(
            {
                "signal": stop.name,
                "epoch": state["epoch"],
                "steps_done": state["steps_done"],
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
        raise
    finally:
        gate.eval()
    return record()
