"""The attention gate trained jointly with LoRA adapters on the model's attention (the ``joint``
objective; Zeng et al. tune the model with the gate).

The gates start from a distilled gate; LoRA adapters (peft) on every attention module's query,
key, value and output projections start at zero, so step 0 is the distilled gate on the base
model. Each layer's gate reads that layer's input *as the adapted model computes it* (a
pre-hook on the decoder layer), its straight-through flags mask the final rows' attention in
the same forward pass, and the loss is the answer's cross-entropy plus ``lam`` times the squared
gap between the measured eviction rate and the target. One backward pass reaches the gates and
the adapters (the gate's input depends on the adapters below it).

Training is resumable: every ``checkpoint_every`` optimiser steps, at each epoch's end and on
Ctrl-C or SIGTERM, the gates, the adapters, the optimiser and the step go to
``<folder>/checkpoint`` (:mod:`circuits.eviction.adapted`); a call with the same folder goes
on from there. The order of examples in an epoch is a function of the seed and the epoch, so a
resumed run takes the same steps as one that never stopped.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from circuits.eviction.apply import attention_modules, key_masks
from circuits.eviction.gate import GateStack, eviction_rate, straight_through
from circuits.eviction.train import OBJECTIVES, GateExample
from interp.errors import IclscopeError, Interrupted
from interp.stops import deferred_stops, layer_modules, stop_points

ALL_OBJECTIVES = (*OBJECTIVES, "joint")
"""The frozen-model objectives of :mod:`circuits.eviction.train`, and this one."""
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
"""The attention projections that get adapters (Llama, Gemma, Mistral, Qwen naming)."""


@dataclass
class JointConfig:
    """``epochs`` passes over the training prompts, an optimiser step every ``accumulate``
    prompts-chunks (gradient accumulation); LoRA of ``rank`` and ``alpha``; Adam at ``lr`` for
    the gates and ``lora_lr`` for the adapters; ``lam`` weighs the eviction-rate loss; a
    checkpoint every ``checkpoint_every`` steps."""

    epochs: int = 4
    rank: int = 8
    alpha: float = 16.0
    lr: float = 3e-3
    lora_lr: float = 2e-4
    lam: float = 10.0
    accumulate: int = 2
    checkpoint_every: int = 10

    def check(self) -> None:
        bad = [
            f"{k} {getattr(self, k)}"
            for k in ("epochs", "rank", "accumulate", "checkpoint_every")
            if getattr(self, k) < 1
        ] + [f"{k} {getattr(self, k)}" for k in ("alpha", "lr", "lora_lr") if getattr(self, k) <= 0]
        if bad or self.lam < 0:
            raise IclscopeError(
                f"joint training settings out of range: {', '.join(bad) or f'lam {self.lam}'}",
                fix="epochs, rank, accumulate: 1 or more; alpha and learning rates above 0",
            )


def decoder_layers(hf) -> list[nn.Module]:
    base = hf.base_model
    layers = getattr(base, "layers", None)
    return list(layers if layers is not None else base.h)


def missing_targets(hf) -> list[str]:
    """The projections of :data:`TARGETS` some attention module lacks (none: adaptable)."""
    missing = set()
    for attn in attention_modules(hf):
        missing |= {t for t in TARGETS if not isinstance(getattr(attn, t, None), nn.Linear)}
    return sorted(missing)


def check_adaptable(hf) -> None:
    missing = missing_targets(hf)
    if missing:
        raise IclscopeError(
            f"the joint objective puts LoRA adapters on {', '.join(TARGETS)}, and this "
            f"{hf.config.model_type!r} model's attention has no {', '.join(missing)}",
            fix="use a Llama-family model (organism, smollm2, gemma3-270m), or --objective distill",
        )


def check_adaptable_folder(folder: str) -> None:
    """:func:`check_adaptable` from the folder's config alone (the model built on the meta
    device: no weights read), so a command refuses before any heavy work."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        check_adaptable(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)))


def add_adapters(hf, cfg: JointConfig):
    """``hf`` with LoRA adapters injected in place (frozen base weights); the peft wrapper,
    whose ``merge_and_unload`` folds them in."""
    from peft import LoraConfig, get_peft_model

    check_adaptable(hf)
    for p in hf.parameters():
        p.requires_grad_(False)
    config = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=0.0,  # dropout would make a resumed run differ from an unbroken one
        target_modules=list(TARGETS),
        bias="none",
    )
    return get_peft_model(hf, config)


def adapter_parameters(hf) -> list[nn.Parameter]:
    return [p for n, p in hf.named_parameters() if "lora_" in n]


@contextlib.contextmanager
def live_flags(hf, gate: GateStack, context, real) -> Iterator[list]:
    """Inside, each decoder layer's gate reads the layer's input as the model computes it and
    leaves its straight-through flags in the yielded list (keys outside the context kept)."""
    flags: list = [None] * len(gate.gates)

    def read(module, args, kwargs, layer):
        h = kwargs.get("hidden_states", args[0] if args else None)
        hard = straight_through(gate.gates[layer](h, real), gate.tau)
        flags[layer] = torch.where(context[:, None], hard, torch.ones_like(hard))

    handles = [
        m.register_forward_pre_hook(partial(read, layer=i), with_kwargs=True)
        for i, m in enumerate(decoder_layers(hf))
    ]
    try:
        yield flags
    finally:
        for h in handles:
            h.remove()


def joint_loss(hf, gate: GateStack, ex: GateExample, lam: float) -> tuple[Tensor, Tensor]:
    """Answer cross-entropy of the adapted model with the gate's live flags on the final rows,
    plus ``lam * (rate - target)^2``; and the measured rate."""
    with live_flags(hf, gate, ex.context, ex.real) as flags, key_masks(hf, flags, ex.start):
        logits = hf(input_ids=ex.tokens, attention_mask=ex.attention_mask, logits_to_keep=1).logits
    rate = eviction_rate(torch.stack(flags), ex.context)
    lm = F.cross_entropy(logits[:, -1].float(), ex.answers)
    return lm + lam * (rate - gate.target_rate) ** 2, rate.detach()


def epoch_groups(n: int, epoch: int, seed: int, accumulate: int) -> list[list[int]]:
    """The examples of each optimiser step of ``epoch``: a function of the seed and the epoch
    alone, so a resumed run replays the same order."""
    order = list(range(n))
    random.Random(f"joint:{seed}:{epoch}").shuffle(order)
    return [order[i : i + accumulate] for i in range(0, n, accumulate)]


def train_joint(
    hf,
    gate: GateStack,
    examples: list[GateExample],
    cfg: JointConfig,
    folder,
    seed: int = 0,
    meta: dict | None = None,
    log: Callable[[str], object] = print,
    max_seconds: float | None = None,
    max_steps: int | None = None,
):
    """Train ``gate`` (warm: a distilled gate) and new LoRA adapters on ``hf`` jointly; resume
    from ``folder``'s checkpoint where there is one of the same run (``meta`` and the
    settings; else refused). Returns ``(peft_model, record)``; the record's ``status`` is
    ``complete``, ``time limit``, ``step limit`` or (on the raised
    :class:`~interp.errors.Interrupted`'s ``record``) ``interrupted``."""
    from circuits.eviction.adapted import Checkpoint

    cfg.check()
    torch.manual_seed(seed)  # the adapters' initial A matrices
    peft_model = add_adapters(hf, cfg)
    lora = adapter_parameters(hf)
    opt = torch.optim.Adam(
        [{"params": list(gate.parameters()), "lr": cfg.lr}, {"params": lora, "lr": cfg.lora_lr}]
    )
    meta = dict(meta or {}, seed=seed, target_rate=gate.target_rate, prompts=_prompts(examples))
    ckpt = Checkpoint(folder, run_meta(meta, cfg))
    state = ckpt.load(peft_model, gate, opt)
    step, history = state["step"], state["history"]
    partial_epoch = state["partial"]  # losses and rates of the unfinished epoch's steps
    resumed_from, status = step, "complete"
    per_epoch = len(epoch_groups(len(examples), 0, seed, cfg.accumulate))
    total = cfg.epochs * per_epoch
    if step:
        log(f"resuming joint training at step {step} of {total} from {ckpt.path}")
    t0 = time.perf_counter()

    def record(stopped: dict | None = None) -> dict:
        return dict(
            objective="joint",
            tau=gate.tau,
            **meta,
            **asdict(cfg),
            status=status,
            stopped=stopped,
            epochs_run=len(history),
            steps_done=step,
            resumed_from=resumed_from,
            history=history,
            seconds=round(time.perf_counter() - t0, 2),
        )

    def save() -> None:
        ckpt.save(peft_model, gate, opt, step, history, partial_epoch)

    gate.train()
    try:
        with stop_points(layer_modules(hf) + list(gate.gates)):
            while step < total:
                epoch, k = divmod(step, per_epoch)
                group = epoch_groups(len(examples), epoch, seed, cfg.accumulate)[k]
                opt.zero_grad()
                losses, rates = [], []
                for i in group:
                    loss, rate = joint_loss(hf, gate, examples[i], cfg.lam)
                    (loss / len(group)).backward()
                    losses.append(float(loss.detach()))
                    rates.append(float(rate))
                with deferred_stops():  # never half the parameters updated
                    opt.step()
                    step += 1
                    partial_epoch.append([sum(losses) / len(losses), sum(rates) / len(rates)])
                elapsed = time.perf_counter() - t0
                if k == per_epoch - 1:
                    loss_e, rate_e = (sum(v) / len(v) for v in zip(*partial_epoch))
                    history.append(dict(epoch=epoch, loss=loss_e, rate=rate_e, seconds=elapsed))
                    partial_epoch.clear()
                    log(
                        f"joint epoch {epoch + 1}/{cfg.epochs}: loss {loss_e:.4f}, eviction "
                        f"rate {rate_e:.3f} (target {gate.target_rate}), {elapsed:.0f} s"
                    )
                if max_steps is not None and step >= max_steps and step < total:
                    status = "step limit"
                elif max_seconds is not None and elapsed > max_seconds and step < total:
                    log(f"stopping: {elapsed:.0f} s is past the {max_seconds:.0f} s budget")
                    status = "time limit"
                if status != "complete" or k == per_epoch - 1 or step % cfg.checkpoint_every == 0:
                    save()
                if status != "complete":
                    break
    except Interrupted as stop:
        status = "interrupted"
        save()  # the steps done; the next call with this folder goes on from them
        stop.record = record({"signal": stop.name, "steps_done": step})
        raise
    finally:
        gate.eval()
    return peft_model, record()


def run_meta(meta: dict, cfg: JointConfig) -> dict:
    """What a checkpoint must match to be resumed: the run (``meta``: model, prompts, seed,
    target rate) and the settings that shape its steps (more epochs may be asked for)."""
    same = {k: v for k, v in asdict(cfg).items() if k not in ("epochs", "checkpoint_every")}
    return {**meta, **same}


def check_resumable(folder, meta: dict, cfg: JointConfig) -> None:
    """Refuse, before any heavy work, a folder whose checkpoint is of another run (the
    number of training prompts is known only once they are built: not compared here)."""
    from circuits.eviction.adapted import Checkpoint

    Checkpoint(folder, run_meta(meta, cfg)).check(skip=("prompts",))


def _prompts(examples: list[GateExample]) -> int:
    return sum(len(e.tokens) for e in examples)
