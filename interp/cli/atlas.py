"""``iclscope atlas``: every analysis on one model, head by head, and ``--compare`` of two."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.cli import checks, options
from interp.cli.app import app, log, report_path
from interp.errors import IclscopeError

SIZES = ("modest", "tiny")
"""``modest``: the atlas's defaults (about a quarter of an hour on smollm2 on 2 cores);
``tiny``: every part at a handful of prompts, a smoke test of the whole run in a minute or two."""


@app.command(short_help="Every analysis on one model, head by head: roles and shared heads.")
@options.execution_options()
def atlas(
    model: str = options.model(),
    tasks: str | None = typer.Option(
        None,
        help="Comma-separated families: the first classification family for the circuit, "
        "the function families for task vectors (the first also for eviction), the first "
        "ranking family for block relevance [the model's own suite's defaults].",
    ),
    parts: str = typer.Option(
        "circuit,task-vectors,eviction,block-relevance",
        help="The analyses to compose, comma-separated.",
    ),
    top: int = typer.Option(10, help="Heads per role set for the roles taken as the top k."),
    size: str = typer.Option("modest", help=f"Sizes of the parts: {' or '.join(SIZES)}."),
    seed: int = options.seed(),
    out: Path = options.out_folder(
        "Runs folder: the atlas and its parts' runs go here, and runs already here are reused."
    ),
    compare: tuple[Path, Path] | None = typer.Option(
        None,
        "--compare",
        help="Compare two atlas runs (of two models) by relative depth instead of running one.",
    ),
    execution=None,
    estimate: options.DryRunOptions = None,
):
    """The ICL atlas: run (or reuse, from --out) the circuit, task vectors, eviction and block
    relevance on one model, put every head's role scores side by side, and test which roles
    share heads more than chance. --compare RUN RUN compares two atlases by relative depth."""
    checks.output_folder(out)
    if compare:
        _compare(*compare, out)
        return
    if size not in SIZES:
        raise IclscopeError(f"--size {size!r} is not a size", fix=f"use {' or '.join(SIZES)}")
    checks.model_folder(model)
    from circuits.atlas.analysis import AtlasAnalysis
    from circuits.atlas.config import AtlasConfig, tiny_config
    from interp.cli.running import run_command

    names = tuple(t.strip() for t in tasks.split(",") if t.strip()) if tasks else None
    for name in names or ():
        checks.task(name)
    config = AtlasConfig(
        seed=seed,
        parts=tuple(p.strip() for p in parts.split(",") if p.strip()),
        tasks=names,
        top=top,
    )
    if size == "tiny":
        config = tiny_config(config)
    config.check()
    analysis = AtlasAnalysis()
    analysis.out = out
    run_command(analysis, config, {"out": out, "model": model, "task": "atlas", **locals()})


def _compare(a: Path, b: Path, out: Path) -> None:
    import sys

    from circuits.atlas.compare import compare_atlases
    from interp.analysis.runner import write_result
    from interp.runs.reports import export_static
    from interp.runs.store import RunWriter

    comparison = compare_atlases(a, b)  # refuses what is not two atlases, before writing
    summary = comparison.summary()
    models = f"{summary.get('model_a', a.name)} vs {summary.get('model_b', b.name)}"
    with RunWriter(
        out,
        kind="atlas-compare",
        model=models,
        task="atlas",
        command=sys.argv,
        params={"runs": [str(a), str(b)]},
    ) as run:
        write_result(run, comparison)
        export_static(run.path, log=log)
    report_path(run.path)
