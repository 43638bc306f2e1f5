"""``iclscope run eviction`` and ``iclscope train gate``: KV-cache eviction flags.

Both check their inputs (output folder, model, task, rates) before anything is created, like
every analysis command (see :mod:`interp.cli.checks`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from interp.analysis.runner import ExecutionOptions
from interp.cli import checks, options
from interp.cli.app import console, log, run_app, train_app
from interp.cli.running import run_command
from interp.errors import IclscopeError

KINDS = ("classification", "function", "retrieval")


def _rates(text: str, option: str = "--rates") -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise IclscopeError(
            f"{option} {text!r} needs eviction rates between 0 and 1 (exclusive)",
            fix=f"write e.g. {option} 0.25,0.5,0.75",
        )
    return values


def _methods(text: str) -> list[str]:
    from circuits.eviction import METHODS

    names = list(METHODS) if text == "all" else [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise IclscopeError(
            f"--methods: unknown eviction method(s) {', '.join(unknown) or text!r}",
            fix=f"use 'all' or a comma-separated subset of {', '.join(METHODS)}",
        )
    return names


def _check(out: Path, model: str, task: str, shots: int, option: str = "--out") -> str:
    """Refuse a bad output folder, task or model before anything is created; the folder."""
    checks.output_folder(out, option)
    family = checks.task(task)
    if family.kind not in KINDS:
        raise IclscopeError(
            f"--task {task} is a {family.kind} family; eviction needs an ICL or key-value family",
            fix="use a function or classification family (e.g. nl_capital), or nl_kv_words",
        )
    folder = checks.model_folder(model)
    checks.prompts(folder, model, [family.name], [shots])
    return folder


def _objective(text: str, option: str) -> str:
    from circuits.eviction.joint import ALL_OBJECTIVES

    if text not in ALL_OBJECTIVES:
        raise IclscopeError(
            f"{option} {text!r} is unknown",
            fix=f"use {', '.join(ALL_OBJECTIVES[:-1])} (model frozen) or joint (with LoRA "
            "adapters on the attention)",
        )
    return text


def _joint_checks(folder: str, gate: Path | None, option: str = "--gate") -> None:
    """The joint objective adapts q, k, v and o, and warm-starts from a gate made for this
    model: both refused now, before any prompt is prefilled."""
    from circuits.eviction.joint import check_adaptable_folder

    check_adaptable_folder(folder)
    if gate is None:
        return
    import json

    from transformers import AutoConfig

    from circuits.eviction import GateStack

    GateStack.load(gate)
    made = json.loads((Path(gate) / "gate.json").read_text())
    cfg = AutoConfig.from_pretrained(folder)
    cfg = getattr(cfg, "text_config", cfg)
    want = dict(
        n_layers=cfg.num_hidden_layers, d_model=cfg.hidden_size, n_heads=cfg.num_attention_heads
    )
    differ = {k: (made.get(k), v) for k, v in want.items() if made.get(k) != v}
    if differ:
        shown = ", ".join(f"{k} {a} there, {b} in the model" for k, (a, b) in differ.items())
        raise IclscopeError(
            f"{option} {gate} was trained for another model ({shown})",
            fix=f"pass a gate trained on this model, or leave {option} out to distill one",
        )


def _kv_keys(text: str) -> str:
    from circuits.eviction.prompts import KV_KEYS

    if text not in KV_KEYS:
        raise IclscopeError(f"--kv-keys {text!r} is unknown", fix=f"use one of {KV_KEYS}")
    return text


@run_app.command(
    "eviction", short_help="Accuracy against KV-cache eviction rate: five methods and a gate."
)
@options.execution_options(options.DRY_RUN_CHUNKS_HELP)
@options.task_file_options()
def run_eviction_command(
    model: str = options.model(),
    task: str = typer.Option("nl_capital", help="An ICL family, or nl_kv_words."),
    rates: str = typer.Option("0.25,0.5,0.75", help="Comma-separated eviction rates."),
    methods: str = typer.Option("all", help="'all' or a subset of the training-free methods."),
    shots: int = options.shots(16),
    prompts: int = options.count(32, "Evaluation prompts (key-value: at 512 tokens)."),
    lengths: str = typer.Option("512,1024", help="Key-value prompt lengths in tokens."),
    gate: Path | None = typer.Option(None, help="A trained gate folder (`train gate`)."),
    train: bool = typer.Option(
        True,
        "--train/--no-train",
        show_default=False,  # said in the help: "[default: train]" read as a mistake
        help="Without --gate: train a distilled gate here (the default; --no-train skips it).",
    ),
    gate_prompts: int = options.count(48, "Training prompts for the gate trained here."),
    gate_epochs: int = options.count(40, "Training epochs for the gate trained here."),
    gate_objective: str = typer.Option(
        "distill",
        help="How the gate trained here learns: distill or end-to-end (model frozen), or joint "
        "(a distilled gate, then gates and LoRA adapters trained together; its adapted model "
        "is evaluated too).",
    ),
    joint_epochs: int = options.count(4, "Epochs of joint training (--gate-objective joint)."),
    lora_rank: int = options.count(8, "LoRA rank of the joint objective's adapters."),
    kv_keys: str = typer.Option("words", help="Key-value keys: words, or 3-digit digits."),
    seed: int = options.seed(),
    out: Path = options.out_folder(),
    chunk: int = options.count(8, "Prompts per prefill at 512 tokens (longer ones: fewer)."),
    execution: ExecutionOptions = None,
    estimate: options.DryRunOptions = None,
):
    """Accuracy against eviction rate for StreamingLLM, H2O, SnapKV, TOVA, random and the
    attention gate, eviction simulated after the prefill; curves, heatmaps, a token view.

    With --executor ray, the evaluation's chunks of prompts (one prefill and every method's
    decodes each) run on the Ray workers, each loading the model once; the gate is trained
    here first (gradient descent in one process) and shipped to them."""
    rate_list, method_list = _rates(rates), _methods(methods)
    length_list = checks.int_list(lengths, "--lengths", minimum=16)
    objective = _objective(gate_objective, "--gate-objective")
    if objective == "joint" and gate is None and not train:
        raise IclscopeError(
            "--gate-objective joint starts from a distilled gate, and --no-train skips it",
            fix="leave out --no-train, or pass --gate DIR to start from that gate",
        )
    folder = _check(out, model, task, shots)
    if objective == "joint":
        _joint_checks(folder, gate)
    elif gate is not None:
        from circuits.eviction import GateStack

        GateStack.load(gate)  # refused now, not after the prefill
    from circuits.eviction.analysis import EvictionAnalysis, EvictionConfig
    from circuits.eviction.joint import JointConfig

    config = EvictionConfig(
        seed=seed,
        shots=shots,
        prompts=prompts,
        rates=tuple(rate_list),
        methods=tuple(method_list),
        lengths=tuple(length_list),
        gate=str(gate) if gate else None,
        train=train,
        gate_prompts=gate_prompts,
        gate_epochs=gate_epochs,
        kv_keys=_kv_keys(kv_keys),
        chunk=chunk,
        objective=objective,
        joint=JointConfig(epochs=joint_epochs, rank=lora_rank),
    )
    run_command(EvictionAnalysis(), config, locals())


@train_app.command("gate", short_help="Train the attention gate (model frozen, or with LoRA).")
@options.task_file_options()
def train_gate_command(
    model: str = options.model(),
    task: str = typer.Option("nl_capital", help="An ICL family, or nl_kv_words."),
    objective: str = typer.Option(
        "distill", help="distill or end-to-end (model frozen), or joint (with LoRA adapters)."
    ),
    rate: float = typer.Option(0.5, help="Target eviction rate."),
    shots: int = options.shots(16),
    prompts: int = options.count(48, "Training prompts."),
    lengths: str = typer.Option("512", help="Key-value prompt lengths in tokens."),
    epochs: int = options.count(40, "Passes over the training prompts (joint: try 4)."),
    max_minutes: float = options.positive(25.0, "Stop after this many minutes of training."),
    seed: int = options.seed(1, "Seed of the training prompts (keep it apart from runs')."),
    kv_keys: str = typer.Option("words", help="Key-value keys: words, or 3-digit digits."),
    warm_gate: Path | None = typer.Option(
        None, help="joint: the distilled gate folder to start from (default: distil one)."
    ),
    distill_epochs: int = options.count(40, "joint: epochs of the distilled warm start."),
    lora_rank: int = options.count(8, "joint: LoRA rank of the adapters."),
    accumulate: int = options.count(2, "joint: prompt chunks per optimiser step."),
    out: Path = typer.Option(..., "--out", help="Folder for the gate and its training record."),
):
    """Train the attention gate with the model frozen, by attention distillation (forward
    passes only) or end to end (answer loss + eviction-rate loss); save it with its record.

    With --objective joint, the gates (from a distilled gate) and LoRA adapters on the
    attention's q, k, v and o projections train together; --out then holds the adapted model
    (adapters merged: `--model OUT` loads it) and its gate (`--gate OUT`). Interrupted, the
    same command with the same --out resumes from its checkpoint."""
    objective = _objective(objective, "--objective")
    _rates(str(rate), "--rate")
    length_list = checks.int_list(lengths, "--lengths", minimum=16)
    folder = _check(out, model, task, shots)
    keys = _kv_keys(kv_keys)
    if objective == "joint":
        _train_joint(
            out,
            model,
            folder,
            task,
            rate,
            shots,
            prompts,
            length_list,
            epochs,
            seed,
            keys,
            warm_gate,
            distill_epochs,
            lora_rank,
            accumulate,
            max_minutes,
        )
        return
    from circuits.eviction.gate_folder import train_gate_folder

    _, record = train_gate_folder(
        out,
        model,
        task,
        objective,
        rate,
        shots,
        prompts,
        length_list,
        epochs,
        seed,
        log=log,
        max_seconds=max_minutes * 60,
        kv_keys=keys,
    )
    console.print(f"[bold green]gate:[/] {out} (eviction rate {record['history'][-1]['rate']:.3f})")
    print(out)


def _train_joint(
    out,
    model,
    folder,
    task,
    rate,
    shots,
    prompts,
    lengths,
    epochs,
    seed,
    kv_keys,
    warm,
    distill_epochs,
    rank,
    accumulate,
    max_minutes,
) -> None:
    from circuits.eviction.joint import JointConfig, check_resumable
    from circuits.eviction.joint_run import train_joint_folder

    joint = JointConfig(epochs=epochs, rank=rank, accumulate=accumulate)
    _joint_checks(folder, warm, "--warm-gate")
    meta = dict(model=model, task=task, shots=shots, lengths=list(lengths), kv_keys=kv_keys)
    check_resumable(out, dict(meta, seed=seed, target_rate=rate), joint)
    _, _, record = train_joint_folder(
        out,
        model,
        task,
        rate,
        shots,
        prompts,
        lengths,
        joint,
        seed,
        warm=warm,
        distill_epochs=distill_epochs,
        log=log,
        max_seconds=max_minutes * 60,
        kv_keys=kv_keys,
    )
    last = record["history"][-1]["rate"] if record["history"] else float("nan")
    console.print(
        f"[bold green]adapted model and gate:[/] {out} (eviction rate {last:.3f}, "
        f"status {record['status']}); use it with --model {out} --gate {out}"
    )
    print(out)
