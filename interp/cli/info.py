"""Commands that only look: ``models``, ``tasks``, ``inspect`` and ``show``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Column, Table

from interp.cli import checks, options
from interp.cli.app import app, console, next_steps
from interp.cli.options import Backend
from interp.errors import IclscopeError

WIDE = 120
"""Below this many columns the tables drop their long columns (or print them under the table)."""


@app.command(short_help="List the named models and whether each is ready.")
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the named models: real pretrained ones first, then the organism and tiny models."""
    from interp.models.registry import MODELS, describe

    rows = [describe(entry) for entry in MODELS.values()]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    console.print(models_table(rows, console.width))
    if console.width < WIDE:  # the long columns as wrapped lines under the table, names whole
        for r in rows:
            console.print(f"[bold]{r['name']}[/]: {r['license']}; {r['source']}", highlight=False)
    next_steps("iclscope tasks --model NAME", "iclscope demo --model NAME --out runs")


def models_table(rows: list[dict], width: int) -> Table:
    """The models as a table; below :data:`WIDE` columns without license and source."""
    wide = width >= WIDE
    table = Table(
        *_name_column(rows),
        "size",
        "layers",
        "heads",
        "kv",
        "context",
        "engine",
        *(["license", "source"] if wide else []),
        "ready",
    )
    for r in rows:
        params = f"{r['parameters'] / 1e6:.1f}M" if r["parameters"] else "?"
        table.add_row(
            r["name"],
            params,
            *(str(r[k] or "?") for k in ("layers", "heads", "kv_heads", "context")),
            (r.get("engine") or "?").split(" ")[0],
            *([r["license"], r["source"]] if wide else []),
            "yes" if r["converted"] else "on first use",
        )
    return table


@app.command(short_help="List the task families, or describe task files.")
@options.task_file_options()
def tasks(
    model: str | None = typer.Option(
        None,
        help="Also say which families this model's tokenizer can build, and why not the others.",
    ),
    task: str | None = typer.Option(
        None,
        help="Describe task files instead (paths, comma-separated): what was inferred from "
        "each and, with --model, what its tokenizer builds.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """List the task families; every --task option takes these names, or a task file's path."""
    tokenizer = None
    if model is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(checks.model_folder(model))
    if task is not None:
        describe_files(task, tokenizer, as_json, model)
        return
    from interp.tasks.suite import TASK_FAMILIES, family_support

    rows = []
    for f in TASK_FAMILIES.values():
        row = {
            "name": f.name,
            "kind": f.kind,
            "source": f.source,
            "template": f.template.demo,
            "labels": list(f.labels),
            "description": f.description,
        }
        if tokenizer is not None:
            reason = family_support(f, tokenizer)
            row.update(buildable=reason is None, why_not=reason)
        rows.append(row)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    wide = console.width >= WIDE
    cols = ["kind", "source", "template", "labels", "description"] if wide else ["kind"]
    if tokenizer is not None:
        cols.append("buildable")
    elif not wide:
        cols.append("labels")
    table = Table(*_name_column(rows), *cols)
    for r in rows:
        labels = ", ".join(r["labels"][:6]) + (" ..." if len(r["labels"]) > 6 else "")
        cells = {
            "kind": r["kind"],
            "source": r["source"],
            "template": repr(r["template"]),
            "labels": labels or "(open)",
            "description": r["description"],
            "buildable": ("yes" if r.get("buildable") else f"no: {r.get('why_not')}"),
        }
        table.add_row(r["name"], *(cells[c] for c in cols))
    console.print(table)
    if not wide:
        console.print(
            f"templates and descriptions: `iclscope tasks --json`, or a terminal of {WIDE} columns",
            highlight=False,
        )
    next_steps(
        "iclscope eval --model smollm2 --task NAME",
        "iclscope run circuit --model smollm2 --task NAME --out runs",
    )


def describe_files(task: str, tokenizer, as_json: bool, model: str | None) -> None:
    """``tasks --task``: one description per family named (files registered by then)."""
    from interp.tasks.files.describe import describe
    from interp.tasks.files.registry import FILE_FAMILIES

    names = [n.strip() for n in task.split(",") if n.strip()]
    not_files = [n for n in names if n not in FILE_FAMILIES]
    if not_files:
        raise IclscopeError(
            f"--task {', '.join(not_files)} names built-in families; `tasks --task` describes "
            "task files",
            fix="pass a file's path, or run `iclscope tasks` for the built-in families",
        )
    found = [describe(FILE_FAMILIES[n], tokenizer) for n in names]
    if as_json:
        print(json.dumps(found[0] if len(found) == 1 else found, indent=1))
        return
    for info in found:
        table = Table(show_header=False, title=f"{info['name']} ({info['path']})")
        for key, value in _description_rows(info):
            table.add_row(key, value)
        console.print(table)
    analysis = {"function": "task-vectors", "classification": "circuit"}
    spec, path = model or "smollm2", found[0]["path"]
    next_steps(
        f"iclscope eval --model {spec} --task {path}",
        f"iclscope run {analysis.get(found[0]['kind'], 'block-relevance')} --model {spec} "
        f"--task {path} --out runs",
    )


def _description_rows(info: dict) -> list[tuple[str, str]]:
    splits = ", ".join(f"{k} {v}" for k, v in info["splits"].items())
    rows = [
        ("kind", info["kind"] + (" (inferred)" if info["kind_inferred"] else "")),
        ("rows", str(info["rows"])),
        ("splits", splits + (" (made, seeded)" if info["split_made"] else " (the file's)")),
        ("columns", ", ".join(f"{k}={v}" for k, v in info["columns"].items())),
        ("template", repr(info["template"])),
    ]
    if info["labels"]:
        rows.append(("labels", ", ".join(f"{k} ({v})" for k, v in info["labels"].items())))
    elif info["distinct_answers"] is not None:
        rows.append(("distinct answers", str(info["distinct_answers"])))
    if "builds" in info:
        rows.append(("builds", "yes" if info["builds"] else f"no: {info['why_not']}"))
        tokens = info.get("answer_tokens")
        if tokens:
            rows.append(
                (
                    "answer tokens",
                    f"{tokens['min']}-{tokens['max']}, median {tokens['median']}, "
                    f"{tokens['one_token_share']:.0%} one token",
                )
            )
        if info.get("first_token_collisions"):
            groups = "; ".join(", ".join(g) for g in info["first_token_collisions"])
            rows.append(("first tokens collide", groups))
        rows.append(("scores", ", ".join(info["scores"])))
    rows.append(("data quality", "; ".join(info["warnings"]) or "no issue found"))
    return rows


def _name_column(rows: list[dict]) -> list[Column]:
    """The name column: as wide as the longest name and never wrapped or cut."""
    width = max(len(r["name"]) for r in rows)
    return [Column("name", no_wrap=True, min_width=width, overflow="fold")]


@app.command()
def inspect(
    model: str = options.model(),
    backend: Backend = typer.Option("transformer_lens", help="The hooked backend."),
):
    """Show a model's shape and its hook points."""
    from interp.models import load_model

    checks.model_folder(model)
    m = load_model(model, backend=backend)
    console.print(m.cfg)
    names = m.hook_names()
    console.print(f"{len(names)} hook points; layer 0:")
    for n in names:
        if n.startswith("blocks.0.") or not n.startswith("blocks."):
            console.print(f"  {n}")


@app.command(short_help="Print a run's status and numbers, or list the runs in a folder.")
def show(
    run: Path = typer.Argument(
        ..., help="A run directory, or a runs folder (then its runs are listed)."
    ),
):
    """Print a run's status and headline numbers (a run whose process died reads as stale); on
    a folder of runs, list them: id, kind, model, task, status and date."""
    if run.is_dir() and not (run / "manifest.json").exists():
        list_folder(run)
        return
    from interp.runs.store import load_run

    loaded = load_run(run)
    m = loaded.manifest
    console.print(f"{run}: {m.get('kind')} on {m.get('model')}, status [bold]{loaded.status}[/]")
    if loaded.status == "stale":
        process = m.get("process") or {}
        console.print(f"  its process ({process.get('pid')}) ended without finishing the run")
    if m.get("error"):
        console.print(f"error: {m['error']}")
    for key, value in loaded.summary.items():
        console.print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
    console.print(f"  tables: {', '.join(loaded.tables)}; figures: {', '.join(loaded.figures)}")
    next_steps(f"open {run / 'report.html'}", f"iclscope app --runs {run.parent}")


def list_folder(folder: Path) -> None:
    """``show`` on a folder without a manifest: the run directories in it, newest first. A
    folder that holds none is refused without the store's "delete the directory" hint, which
    is for a damaged run, not for a folder of someone's files."""
    from interp.runs.store import list_runs

    runs = [r for r in list_runs(folder) if (Path(r["path"]) / "manifest.json").is_file()]
    if not runs:
        raise IclscopeError(
            f"{folder} is not a run directory (no manifest.json) and holds no run directories",
            fix="pass a run directory, or the runs folder a command wrote into (--out)",
        )
    rows = [("id", "kind", "model", "task", "status", "date (UTC)")]
    for r in runs:
        started = (r["started"] or "")[:16].replace("T", " ")  # to the minute
        cells = [r["kind"], r["model"], r["task"], r["status"], started]
        rows.append((r["run_id"], *(str(c) if c else "-" for c in cells)))
    # aligned lines, not a table: a table squeezed into 80 columns cut ids and tasks mid-word
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        style = "bold" if k == 0 else None  # markup off: a model's path may hold brackets
        console.print(line, style=style, soft_wrap=True, highlight=False, markup=False)
    next_steps(f"iclscope show {folder / runs[0]['run_id']}", f"iclscope app --runs {folder}")
