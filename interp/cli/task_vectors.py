"""``run task-vectors`` and ``bench aie``: function vectors, task vectors and soft injection.

Inputs are checked (output folder, model, function tasks, prompt length) before the run
directory exists, as for the other analyses. ``run task-vectors`` turns its options into a
:class:`~circuits.task_vectors.analysis.TaskVectorsConfig` and hands it to
:func:`interp.analysis.run_analysis`, which opens and closes the executor.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from interp.analysis.runner import ExecutionOptions
from interp.cli import checks, options
from interp.cli.app import bench_app, console, run_app
from interp.cli.running import run_command
from interp.errors import IclscopeError


@run_app.command(
    "task-vectors",
    short_help="Function vectors, task vectors and soft injection on function tasks.",
)
@options.execution_options()
@options.task_file_options()
def run_task_vectors_command(
    model: str = options.model(),
    task: str = typer.Option(
        "all",
        help="A function family, several comma-separated, or 'all' (every natural "
        "function family; the organism's on models that cannot build them).",
    ),
    shots: int = options.shots(8, "Demonstrations in ICL, task-embedding and AIE prompts."),
    test_items: int = options.count(40, "Held-out items per task, scored 0-shot."),
    te_prompts: int = options.count(50, "k-shot prompts averaged into the task embedding."),
    trials: int = options.count(25, "Shuffled-label prompts per task for the AIE."),
    top_k: int = options.count(10, "Heads in the function vector."),
    steps: int = options.count(400, "Soft-injection Adam steps (per task, and shared)."),
    lr: float = options.positive(0.2, "Soft-injection learning rate."),
    batch: int = options.count(16, "Soft-injection prompts per step."),
    shared: bool = typer.Option(
        True,
        "--shared/--no-shared",
        show_default=False,  # said in the help: "[default: shared]" read as a mistake
        help="Also learn one alpha shared by all tasks (the default; --no-shared skips it).",
    ),
    stability_lrs: str = typer.Option(
        "",
        help="Extra soft-injection fits at these learning rates (main seed), comma-separated, "
        "to judge which heads' alpha is stable; each fit costs one more training per alpha.",
    ),
    stability_seeds: str = typer.Option(
        "",
        help="Extra soft-injection fits at these seeds (main lr), comma-separated. With theta "
        "starting at 0 a seed only changes the order of training batches (see --init-std).",
    ),
    init_std: float = typer.Option(
        0.0, help="Start theta at N(0, init_std^2), drawn with the seed [0: theta = 0, the paper]."
    ),
    circuit_prompts: int = typer.Option(
        64, min=0, help="Prompts for the ICL circuit's step-3 heads (0: skip the overlap)."
    ),
    seed: int = options.seed(),
    seeds: str | None = typer.Option(
        None,
        help="Draw the prompts once per seed, comma-separated (e.g. 0,1,2), and report each "
        "number's spread across the draws beside its interval; every seed costs one more run "
        "[the --seed alone].",
    ),
    threads: int | None = options.count(
        None, "Torch CPU threads [torch's default]; 1 is faster on a machine others load."
    ),
    out: Path = options.out_folder(),
    max_batch: int | None = options.max_batch(),
    execution: ExecutionOptions = None,
    estimate: options.DryRunOptions = None,
):
    """Function vectors (Todd et al.), task vectors (Hendel et al.) and soft injection (Park &
    Rhee) on function tasks, scored 0-shot on held-out items against 0-shot and k-shot ICL.

    With --executor ray, the engine plans (the AIE, the FV and TV layer sweeps, the
    soft-injection evaluation) run on the Ray workers. Soft injection's training is gradient
    descent in one process, and the task embeddings and ICL accuracies are cached here: they
    stay local."""
    checks.output_folder(out)
    lrs = checks.float_list(stability_lrs, "--stability-lrs") if stability_lrs else []
    fit_seeds = (
        checks.int_list(stability_seeds, "--stability-seeds", example="1,2")
        if stability_seeds
        else []
    )
    prompt_seeds = _seeds(seeds)
    if not (init_std >= 0 and math.isfinite(init_std)):  # also refuses nan
        raise IclscopeError(
            f"--init-std {init_std} is not a finite number >= 0",
            fix="use --init-std 0 (the paper's start) or a small spread such as 0.1",
        )
    folder = checks.model_folder(model)
    import torch

    from circuits.task_vectors.analysis import TaskVectorsAnalysis, TaskVectorsConfig
    from circuits.task_vectors.data import resolve_tasks, tasks_for

    if threads:
        torch.set_num_threads(threads)

    if task != "all":
        for name in resolve_tasks(task):
            checks.task(name, kind="function")
        checks.prompts(folder, model, resolve_tasks(task), [shots])
    config = TaskVectorsConfig(
        seed=seed,
        shots=shots,
        test_items=test_items,
        te_prompts=te_prompts,
        trials=trials,
        top_k=top_k,
        steps=steps,
        lr=lr,
        batch=batch,
        shared=shared,
        max_batch=max_batch,
        stability_lrs=tuple(lrs),
        stability_seeds=tuple(fit_seeds),
        init_std=init_std,
        circuit_prompts=circuit_prompts,
        tasks=tasks_for(model, task),
        seeds=tuple(prompt_seeds),
    )
    run_command(TaskVectorsAnalysis(), config, locals())


def _seeds(text: str | None) -> list[int]:
    """``--seeds``: distinct integers >= 0 (none given: the run's --seed alone)."""
    if text is None:
        return []
    values = checks.int_list(text, "--seeds", example="0,1,2")
    if len(set(values)) < len(values):
        raise IclscopeError(
            f"--seeds {text!r} repeats a seed: a repeat draws the same prompts again",
            fix="list each seed once, e.g. --seeds 0,1,2",
        )
    return values


@bench_app.command(
    "aie", short_help="Every head's average indirect effect: one plan against the published loop."
)
@options.task_file_options()
def bench_aie_command(
    model: str = options.model(),
    task: str | None = typer.Option(None, help="A function family [nl_antonym]."),
    trials: int = options.count(4, "Shuffled-label prompts (the loop runs heads x trials)."),
    shots: int = options.shots(8),
    threads: int | None = options.count(None, "Torch CPU threads [torch's default]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Every head's average indirect effect as one engine plan against the published loop
    (one forward per head and prompt): times, speedup and the largest difference."""
    checks.model_folder(model)
    if task is not None:
        checks.task(task, kind="function")
    import torch

    from circuits.task_vectors.bench import bench_aie

    if threads:
        torch.set_num_threads(threads)

    quiet = lambda *a: None  # noqa: E731
    result = bench_aie(model, task, trials, shots, log=quiet if as_json else console.print)
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"{result['heads']} heads x {result['trials']} prompts: loop {result['seconds_loop']} s, "
        f"engine {result['seconds_engine']} s, speedup {result['speedup']}x, max |diff| "
        f"{result['max_abs_diff']:.2e} (load {result['load_average']})"
    )
