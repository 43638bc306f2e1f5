"""The joint objective end to end: a distilled gate to start from, joint training with LoRA
adapters (:mod:`circuits.eviction.joint`), the adapted model folder, and its evaluation on
held-out prompts against full attention of the base and of the adapted model and SnapKV at the
rate the jointly trained gate chose."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from circuits.eviction.evaluate import EvictionEval
from circuits.eviction.gate import GateStack
from circuits.eviction.joint import JointConfig, train_joint

GATE_JOINT = "gate_joint"
GATE_JOINT_POOLED = "gate_joint_pooled"
CURVE_RATES = (0.5, 0.6, 0.7)
"""Fixed rates at which the joint gate (its top budget per head) meets SnapKV: a gate's own
threshold picks its own rate, and a comparison at the rate asked for needs both at that rate."""
DISTILLED = "distilled"
"""Subfolder of the output for the distilled gate trained there as the warm start."""


def train_joint_folder(
    out: str | Path,
    model: str,
    task: str,
    rate: float = 0.5,
    shots: int = 16,
    prompts: int = 48,
    lengths: Sequence[int] = (512,),
    joint: JointConfig | None = None,
    seed: int = 1,
    warm: GateStack | str | Path | None = None,
    distill_epochs: int = 40,
    log: Callable[[str], object] = print,
    loaded=None,
    max_seconds: float | None = 1500.0,
    kv_keys: str = "words",
    examples: list | None = None,
):
    """Train gates and adapters jointly on prompts of seed ``seed`` and save the merged model
    with its gate in ``out``; resume from ``out``'s checkpoint where there is one. The gates
    start from ``warm`` (a gate or its folder), else from ``out/distilled`` (trained there by
    distillation first, ``distill_epochs`` epochs). With ``loaded``, the caller's model stays
    as it was: the adapters go on a copy. Returns ``(adapted model, gate, record)``."""
    from circuits.eviction.adapted import save_adapted
    from circuits.eviction.gate_folder import train_gate_folder, training_examples
    from circuits.eviction.prompts import eviction_settings, load_eager
    from interp.errors import Interrupted
    from interp.models import resolve_spec

    joint = joint or JointConfig()
    joint.check()
    out = Path(out)
    t0 = time.perf_counter()
    base_folder, _ = resolve_spec(model)
    hf, tokenizer, builder = loaded or load_eager(model)
    settings = eviction_settings(builder, task, shots, prompts, lengths, seed, kv_keys)
    if examples is None:
        examples = training_examples(hf, settings, rate, log)
    gate = _warm_gate(warm, out / DISTILLED)
    if gate is None:
        log(f"joint training starts from a distilled gate: training it in {out / DISTILLED}")
        gate, _ = train_gate_folder(
            out / DISTILLED,
            model,
            task,
            "distill",
            rate,
            shots,
            prompts,
            lengths,
            distill_epochs,
            seed,
            log=log,
            loaded=(hf, tokenizer, builder),
            max_seconds=max_seconds,
            kv_keys=kv_keys,
            examples=examples,
        )
    gate = copy.deepcopy(gate)
    gate.target_rate = gate.config["target_rate"] = rate
    adapted = copy.deepcopy(hf) if loaded is not None else hf
    meta = dict(model=model, task=task, shots=shots, lengths=list(lengths), kv_keys=kv_keys)
    context = dict(meta, settings=list(settings), command=sys.argv)
    try:
        peft_model, record = train_joint(
            adapted, gate, examples, joint, out, seed, meta=meta, log=log, max_seconds=max_seconds
        )
    except Interrupted as stop:
        steps = getattr(stop, "record", {}).get("steps_done")
        log(f"interrupted ({stop.name}) after {steps} steps: the checkpoint in {out} resumes")
        raise
    merged = peft_model.merge_and_unload().eval()
    record.update(context, total_seconds=round(time.perf_counter() - t0, 2))
    save_adapted(merged, tokenizer, gate, out, base_folder, record)
    log(f"adapted model and gate saved in {out} ({record['total_seconds']:.0f} s in all)")
    return merged, gate.eval(), record


def _warm_gate(warm, distilled: Path) -> GateStack | None:
    if isinstance(warm, GateStack):
        return warm
    if warm is not None:
        return GateStack.load(warm)
    if (distilled / "training.json").exists():  # a restart: the warm start is already there
        return GateStack.load(distilled)
    return None


@dataclass
class JointResult:
    """The jointly trained gate on held-out prompts: ``table`` has one row per setting, model
    (``base``, ``adapted``) and method (``full``, ``snapkv`` at the gate's rate,
    ``gate_joint`` at its own threshold); ``rows``: each prompt's rate under the gate;
    ``curve``: the same columns at each fixed rate of :data:`CURVE_RATES`, for ``gate_joint``
    (the adapted model, the gate's top scores kept in every head alike), ``gate_joint_pooled``
    (its top scores over all heads together) and ``snapkv`` on both models."""

    table: pd.DataFrame
    rate: float
    rows: list[float]
    record: dict | None
    folder: str
    curve: pd.DataFrame | None = None


def evaluate_joint(
    base,
    adapted,
    tokenizer,
    gate: GateStack,
    settings,
    folder,
    record=None,
    chunk=8,
    executor=None,
    log=print,
) -> JointResult:
    """The adapted model with every key, with the gate at its threshold and at each rate of
    :data:`CURVE_RATES`, then SnapKV at the rate the gate evicted and at those rates, on the
    adapted model and on ``base``."""
    curve_rates = tuple(CURVE_RATES)
    own = EvictionEval(("snapkv",), curve_rates, chunk).run(
        adapted, settings, tokenizer, gate, log=log, executor=executor, model=str(folder)
    )
    n = {s: len(settings[s]) for s in own.gate}
    rate = sum(own.gate[s]["rate"] * n[s] for s in n) / sum(n.values())
    at_rate = min(round(rate, 4), 0.99)
    runs = {
        "adapted": EvictionEval(("snapkv",), (at_rate,), chunk).run(
            adapted, settings, tokenizer, log=log, executor=executor, model=str(folder)
        ),
        "base": EvictionEval(("snapkv",), tuple(sorted({at_rate, *curve_rates})), chunk).run(
            base, settings, tokenizer, log=log, executor=executor
        ),
    }
    rows, curve = [], []
    for name, result in runs.items():
        for r in result.curves.itertuples():
            if r.method == "full" or r.rate == at_rate:
                rows.append(dict(_row(r), model=name))
            if name == "base" and (r.method == "full" or r.rate in curve_rates):
                curve.append(dict(_row(r), model=name))
    for r in own.curves.itertuples():  # the adapted model at the fixed rates, one prefill
        renamed = {"gate": GATE_JOINT, "gate_pooled": GATE_JOINT_POOLED}
        if r.method in ("full", "snapkv", *renamed):
            method = renamed.get(r.method, r.method)
            curve.append(dict(_row(r), model="adapted", method=method))
    for s, g in own.gate.items():
        rows.append(
            dict(
                setting=s,
                model="adapted",
                method=GATE_JOINT,
                rate=None,
                measured_rate=g["rate"],
                accuracy=g["accuracy"],
                prompts=n[s],
            )
        )
    columns = ["setting", "model", "method", "rate", "measured_rate", "accuracy", "prompts"]
    table = pd.DataFrame(rows)[columns]
    gate_rows = [r for s in own.gate for r in own.gate_rows.get(s, [])]
    return JointResult(table, rate, gate_rows, record, str(folder), pd.DataFrame(curve)[columns])


def _row(r) -> dict:
    keys = ("setting", "method", "rate", "measured_rate", "accuracy", "prompts")
    return {k: getattr(r, k) for k in keys}
