"""``organism train`` and ``organism eval``: the embedded ICL model organism."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from interp.cli import checks, options
from interp.cli.app import console, log, organism_app
from interp.errors import IclscopeError, write_error

_INIT_FIX = "pass a folder written by `iclscope organism train`"


def _check_train_out(out: Path) -> None:
    """A fresh folder, or one without a model: training must never overwrite a model that
    is already there (the shipped organism included)."""
    checks.output_folder(out)
    held = [name for name in ("config.json", "model.safetensors") if (out / name).exists()]
    if held:
        raise IclscopeError(
            f"--out {out} already holds a model ({', '.join(held)})",
            fix="pass a new folder, or delete that model first",
        )


def _check_init(init: Path) -> None:
    from interp.models.files import check_model_folder, read_json

    if not (init / "config.json").is_file():
        raise IclscopeError(
            f"--init {init} is not a trained model folder (no config.json)", fix=_INIT_FIX
        )
    check_model_folder(init, fix=_INIT_FIX)
    read_json(init / "training_record.json", fix=_INIT_FIX)


@organism_app.command("train")
def organism_train(
    out: Path = typer.Option(..., help="A new folder to write the trained model into."),
    seed: int = options.seed(help="Random seed; the same seed gives the same data stream."),
    minutes: float = options.positive(70.0, "Wall-clock budget; the schedule follows it."),
    max_steps: int | None = options.count(None, "Stop after this many steps instead."),
    d_model: int = options.count(128, "Residual width (a multiple of the 8 heads)."),
    n_layers: int = options.count(4, "Layers."),
    init: Path | None = typer.Option(
        None, help="Continue from this trained organism folder instead of a fresh model."
    ),
    lr: float = options.positive(2e-3, "Peak learning rate."),
):
    """Train the ICL model organism on the synthetic language (CPU, about an hour)."""
    _check_train_out(out)
    if init is not None:
        _check_init(init)
    from interp.organism.train import TrainConfig

    cfg = TrainConfig(
        seed=seed,
        minutes=minutes,
        max_steps=max_steps,
        d_model=d_model,
        n_layers=n_layers,
        init=str(init) if init else None,
        lr=lr,
    )
    if d_model % cfg.n_heads:
        raise IclscopeError(
            f"--d-model {d_model} is not a multiple of the {cfg.n_heads} heads",
            fix=f"use e.g. --d-model {cfg.n_heads * 16}",
        )
    from interp.organism.train import train

    try:
        record = train(out, cfg, log=log)
    except OSError as err:  # the model and its record are the only files train writes
        raise write_error(err.filename or out, err) from None
    console.print(f"wrote {out} ({record['steps']} steps, {record['wall_seconds'] / 60:.1f} min)")


@organism_app.command("eval")
def organism_eval(
    # the one command whose default is not options.DEFAULT_MODEL: it scores the organism's own
    # synthetic language, which no pretrained model speaks
    model: str = options.model(
        "organism",
        help="The embedded organism, or a folder written by `iclscope organism train`.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    n: int = options.count(200, "Held-out prompts per cell."),
):
    """Score held-out prompts: ICL accuracy by shots, ranking P@1, key-value retrieval."""
    where = checks.model_folder(model)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp.organism.evaluate import evaluate_organism

    hf = AutoModelForCausalLM.from_pretrained(where).eval()
    result = evaluate_organism(hf, AutoTokenizer.from_pretrained(where), n=n)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("measure", *[f"{k}-shot" for k in ("0", "1", "2", "4", "8")])
    for key in ("classification_semantic", "classification_arbitrary", "function_tasks"):
        table.add_row(key, *[f"{v:.3f}" for v in result[key].values()])
    console.print(table)
    console.print(f"ranking precision@1 (10 documents): {result['ranking_p_at_1']:.3f}")
    console.print(
        f"key-value retrieval ({result['kv_retrieval_tokens']} tokens): "
        f"{result['kv_retrieval_acc']:.3f}"
    )
