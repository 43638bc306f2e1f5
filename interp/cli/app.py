"""The Typer applications every command module registers on, and the two consoles.

Importing this module stays light (typer and rich only): the heavy imports (torch, the
models) happen inside each command, after its options have been checked, so a usage error is
answered in a fraction of a second.
"""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="iclscope: see how a language model learns from its context.\n\n"
    "Run `iclscope demo` for a first report on the embedded model organism.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
organism_app = typer.Typer(
    help="The embedded ICL model organism: train or evaluate it.", no_args_is_help=True
)
app.add_typer(organism_app, name="organism")
run_app = typer.Typer(help="Analyses that write a run directory.", no_args_is_help=True)
app.add_typer(run_app, name="run")
bench_app = typer.Typer(
    help="Benchmarks: commands that print ratios, not tests.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
train_app = typer.Typer(help="Train small add-ons to a frozen model.", no_args_is_help=True)
app.add_typer(train_app, name="train")

console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)  # paths stay whole


def report_path(path) -> None:
    """The last lines of every command that writes a run: the report, the run's path alone on
    stdout (scripts and tests read it), then what to do next (on stderr)."""
    console.print(f"[bold green]report:[/] {path / 'report.html'}")
    print(path)
    next_steps(f"open {path / 'report.html'}", f"iclscope app --runs {path.parent}")


def next_steps(*commands: str) -> None:
    """What a user runs next, as the command's last lines (stderr: stdout stays data)."""
    for command in commands:
        err_console.print(f"[bold]next:[/] {command}")
