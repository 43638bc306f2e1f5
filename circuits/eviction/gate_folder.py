"""The attention gate trained on its own prompts and saved in a folder with its record: what
``train gate`` and a training eviction run share."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from circuits.eviction.gate import GateStack
from circuits.eviction.prompts import eviction_settings, load_eager
from circuits.eviction.train import gate_examples, train_gate
from interp.analysis.base import Log
from interp.errors import Interrupted


def train_gate_folder(
    out: str | Path,
    model: str = "smollm2",
    task: str = "nl_capital",
    objective: str = "distill",
    rate: float = 0.5,
    shots: int = 16,
    prompts: int = 48,
    lengths: Sequence[int] = (512,),
    epochs: int = 40,
    seed: int = 1,
    log: Callable[[str], object] = print,
    loaded=None,
    max_seconds: float | None = 1500.0,
    kv_keys: str = "words",
    examples: list | None = None,
) -> tuple[GateStack, dict]:
    """Train a gate on prompts of its own seed (never the evaluation's) and save it in ``out``
    (``gate.pt``, ``gate.json``, ``training.json``); ``examples``: those prompts already
    prefilled (:func:`training_examples`), where the caller has them."""
    from interp.models.interface import ModelConfig

    t0 = time.perf_counter()
    hf, tokenizer, builder = loaded or load_eager(model)
    settings = eviction_settings(builder, task, shots, prompts, lengths, seed, kv_keys)
    if examples is None:
        examples = training_examples(hf, settings, rate, log)
    prefill_s = time.perf_counter() - t0
    import torch

    torch.manual_seed(seed)  # the gate's initial weights: the same seed gives the same gate
    gate = GateStack.for_model(ModelConfig.from_hf(model, hf.config), target_rate=rate)
    context = dict(model=model, task=task, shots=shots, settings=list(settings), command=sys.argv)
    context.update(prefill_seconds=round(prefill_s, 2))
    try:
        record = train_gate(
            hf,
            gate,
            examples,
            objective,
            epochs=epochs,
            seed=seed,
            log=log,
            max_seconds=max_seconds,
        )
    except Interrupted as stop:  # keep the steps done, with a record saying where it stopped
        if getattr(stop, "record", None) is not None:
            record = {**stop.record, **context}
            record.update(total_seconds=round(time.perf_counter() - t0, 2))
            gate.save(out, record)
            log(f"interrupted ({stop.name}) after {record['steps_done']} steps: saved in {out}")
        raise
    record.update(context, total_seconds=round(time.perf_counter() - t0, 2))
    gate.save(out, record)
    log(f"gate saved in {out} ({record['total_seconds']:.0f} s in all)")
    return gate, record


def training_examples(hf, settings: dict, rate: float, log: Log = print) -> list:
    """The training prompts prefilled once (:func:`~circuits.eviction.train.gate_examples`)."""
    examples = []
    for name, batch in settings.items():
        log(f"gate training data: prefill of {len(batch)} prompts ({name})")
        examples += gate_examples(hf, batch, rate)
    return examples
