"""Commands that measure a model: ``eval``, and the ones that write a run directory,
``demo``, ``run patch`` and ``run circuit``.

Each checks all of its inputs (see :mod:`interp.cli.checks`) before it creates the run
directory, so a mistake leaves the runs folder as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from interp.analysis.base import config_from
from interp.analysis.runner import ExecutionOptions
from interp.cli import checks, options
from interp.cli.app import app, console, log, next_steps, run_app
from interp.cli.options import Ablation, Component, Metric, Score
from interp.cli.running import run_command
from interp.errors import IclscopeError


@app.command(
    "eval", short_help="Score ICL by family and shots, ranking P@1 and key-value retrieval."
)
@options.task_file_options()
def eval_command(
    model: str = options.model(),
    task: str = typer.Option(
        "all",
        help="A family name, or 'all': the model's own suite (natural-language families on "
        "real models, the organism's on the organism) as far as its tokenizer builds it.",
    ),
    shots: str = typer.Option("0,1,2,4,8", help="Comma-separated shot counts."),
    n: int = options.count(64, "Prompts per cell."),
    seed: int = options.seed(10_007, "Seed of the evaluation prompts."),
    score: Score = typer.Option(
        "first-token",
        help="first-token: the answer's first token (FV's measure); exact: the greedy answer "
        "equals the answer, as normalised text.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Score in-context learning per family and shot count, ranking P@1, and key-value
    retrieval at 256-2048 tokens."""
    shot_list = checks.int_list(shots, "--shots", minimum=0)
    names = [checks.task(t.strip()).name for t in task.split(",")] if task != "all" else None
    folder = checks.model_folder(model)
    from interp.tasks.run_eval import run_eval, runnable_families

    if names is None:
        from transformers import AutoTokenizer

        from interp.tasks.suite import own_suite

        tokenizer = AutoTokenizer.from_pretrained(folder)
        names = runnable_families(tokenizer, source=own_suite(tokenizer))
    checks.prompts(folder, model, names, shot_list)
    result = run_eval(model, names, shot_list, n, seed, quiet=as_json, score=score)
    if as_json:
        print(json.dumps(result))
        return
    _print_eval(result, shot_list)
    next_steps(
        f"iclscope demo --model {model} --out runs",
        f"iclscope run circuit --model {model} --task TASK --out runs",
    )


def _print_eval(result: dict, shot_list: list[int]) -> None:
    from interp.tasks.suite import TASK_FAMILIES

    table = Table(
        "family", "kind", *[f"{k}-shot" for k in shot_list], title=f"score: {result['score']}"
    )
    for name, fam in result["families"].items():
        if "shots" in fam:
            table.add_row(name, fam["kind"], *[f"{v:.3f}" for v in fam["shots"].values()])
    console.print(table)
    for name, fam in result["families"].items():
        if "p_at_1" in fam:
            console.print(
                f"{name}: precision@1 over {TASK_FAMILIES[name].default_k} documents "
                f"{fam['p_at_1']:.3f}"
            )
        if "tokens" in fam:
            cells = ", ".join(f"{t} tokens {a:.3f}" for t, a in fam["tokens"].items())
            console.print(f"{name}: {cells}")


@app.command(short_help="Evaluate, look inside one prompt, run the ICL circuit: one report.")
def demo(
    out: Path = options.out_folder("Runs folder to write the run directory into."),
    model: str = options.model(),
    seed: int = options.seed(),
    n: int = options.count(32, "Held-out prompts per evaluation cell."),
    pipeline: bool = typer.Option(
        True,
        "--pipeline/--no-pipeline",
        show_default=False,  # the help says it: "[default: pipeline]" read as a mistake
        help="Run the ICL circuit as well (the default); --no-pipeline leaves it out.",
    ),
    circuit_prompts: int = options.count(
        128, "Prompts for the circuit (`run circuit` takes 256 or more for firmer numbers)."
    ),
    ablation_prompts: int = options.count(32, "Of those, prompts for the edge ablations."),
):
    """The main job: evaluate a few task families by shots, look inside one prompt, then run
    the ICL circuit (unless --no-pipeline); all of it in one run directory with a report. Sized
    to take about 5 minutes on 2 CPU cores on smollm2."""
    checks.output_folder(out)
    checks.model_folder(model)
    from circuits.demo.analysis import DemoAnalysis, DemoConfig

    config = DemoConfig(
        seed=seed,
        n=n,
        circuit=pipeline,
        circuit_prompts=circuit_prompts,
        ablation_prompts=ablation_prompts,
    )
    run_command(DemoAnalysis(), config, {**locals(), "task": "demo"})


def _check_run(out: Path, model: str, task: str, shots: int) -> None:
    """What every analysis run checks first: the output folder, the model, a classification
    task its tokenizer can build, and prompts that fit its context."""
    checks.output_folder(out)
    family = checks.task(task, kind="classification")
    folder = checks.model_folder(model)
    checks.prompts(folder, model, [family.name], [shots])


@run_app.command(
    "patch", short_help="Patch or ablate every head, position, MLP or edge in batched passes."
)
@options.execution_options()
@options.task_file_options()
def run_patch_command(
    model: str = options.model(),
    task: str = typer.Option("sentiment_semantic", help="A classification task family."),
    component: Component = typer.Option("heads", help="What each plan row patches."),
    metric: Metric = typer.Option("logit_diff", help="Read at the query's last token."),
    ablation: Ablation | None = typer.Option(None, help="Ablate instead of patching."),
    prompts: int = options.count(8, "Clean/corrupted prompt pairs."),
    shots: int = options.shots(),
    seed: int = options.seed(),
    max_batch: int | None = options.max_batch(),
    per_position: bool = typer.Option(
        False, "--per-position", help="Heads: patch each position separately."
    ),
    out: Path = options.out_folder(),
    execution: ExecutionOptions = None,
    estimate: options.DryRunOptions = None,
):
    """Patch or ablate every component in batched forward passes; write heatmaps, the top
    components, the plan, summary.json and a report."""
    _check_run(out, model, task, shots)
    from circuits.activation_patching import ActivationPatching, PatchConfig

    config = config_from(PatchConfig, locals())  # the options are the config's fields
    run_command(ActivationPatching(), config, locals())


@run_app.command(
    "circuit", short_help="The ICL circuit (Cho et al.): summarize, merge, retrieve and copy."
)
@options.execution_options()
@options.task_file_options()
def run_circuit_command(
    model: str = options.model(),
    task: str | None = typer.Option(
        None,
        help="A classification task family [the model's own arbitrary-label family, or the "
        "first whose labels are single tokens on its tokenizer].",
    ),
    shots: int = options.shots(),
    prompts: int = options.count(512, "Prompts for the probes and the ablation table."),
    seed: int = options.seed(),
    seeds: str | None = typer.Option(
        None,
        help="Comma-separated seeds, e.g. 0,1,2: run the circuit once per seed, each on its "
        "own draw of prompts, and report the spread across seeds [one run, with --seed].",
    ),
    out: Path = options.out_folder(),
    ablation_prompts: int | None = options.count(
        None,
        "Run the ablation table on the first N prompts only [all]: it costs up to "
        "77 forward passes per prompt.",
    ),
    max_batch: int | None = options.max_batch(),
    execution: ExecutionOptions = None,
    estimate: options.DryRunOptions = None,
):
    """The ICL inference circuit (Cho et al.): summarize, semantics merge, retrieve and copy,
    and the attention-edge ablation table, written as a run directory. The ablation table is
    one engine plan (it runs on --executor); caching the prompts' states runs here. With
    --seeds it all runs once per seed (that many times as long)."""
    from circuits.icl_circuit.analysis import CircuitConfig, IclCircuitAnalysis

    seeds = _circuit_seeds(seeds, seed)  # free to check: before the model or the task
    seed = seeds[0] if seeds else seed
    if task is None:
        checks.output_folder(out)
        task = _default_circuit_task(model)
    _check_run(out, model, task, shots)
    config = config_from(CircuitConfig, locals())
    run_command(IclCircuitAnalysis(), config, locals())


def _circuit_seeds(text: str | None, seed: int) -> tuple[int, ...] | None:
    """``--seeds`` as a tuple (``None`` without it), each seed once; a ``--seed`` beside it
    must be its first (the seed whose tables the run keeps)."""
    if text is None:
        return None
    seeds = tuple(checks.int_list(text, "--seeds", minimum=0, example="0,1,2"))
    if len(set(seeds)) < len(seeds):
        raise IclscopeError(
            f"--seeds {text!r} repeats a seed: the same seed draws the same prompts again",
            fix="list each seed once, e.g. --seeds 0,1,2",
        )
    if seed not in (0, seeds[0]):
        raise IclscopeError(
            f"--seed {seed} and --seeds {text} disagree on the first seed",
            fix="pass --seeds alone (its first seed gives the tables and figures)",
        )
    return seeds


def _default_circuit_task(model: str) -> str:
    """The circuit's task when none is given: one the model's tokenizer builds with every
    label a single token, said in the log."""
    from transformers import AutoTokenizer

    from circuits.icl_circuit.tasks import default_task

    folder = checks.model_folder(model)
    task, why = default_task(AutoTokenizer.from_pretrained(folder))
    log(f"task: {task} ({why}; --task picks another)")
    return task
