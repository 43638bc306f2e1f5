"""The Typer applications every command module registers on, and the two consoles.

Importing this module stays light (typer and rich only): the heavy imports (torch, the
models) happen inside each command, after its options have been checked, so a usage error is
answered in a fraction of a second.
"""

from __future__ import annotations

import typer
from rich.console import Console

HELP_WIDTH = 100
"""Help wraps at this many columns (or the terminal's, if narrower)."""


def _typer(help: str, **extra) -> typer.Typer:
    """A command group whose help reads as plain text. Typer's rich panels wrapped option help
    mid-sentence in a narrow column, printed ``<bool>`` beside every flag, kept the docstrings'
    line breaks in the command list, and read ``[default ...]`` in our help as markup and
    dropped it; click's plain formatter has none of these faults."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **extra)


app = _typer(
    "iclscope: see how a language model learns from its context.\n\n"
    "Run `iclscope demo` for a first report on SmolLM2-135M (smollm2, the default model of "
    "every command; a few minutes on a CPU), or `iclscope run patch --model organism` for a "
    "run on the embedded model organism in seconds.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"max_content_width": HELP_WIDTH},  # the subcommands inherit it
)
organism_app = _typer("The embedded ICL model organism: train or evaluate it.")
app.add_typer(organism_app, name="organism")
run_app = _typer("Analyses that write a run directory.")
app.add_typer(run_app, name="run")
bench_app = _typer("Benchmarks: commands that print ratios, not tests.")
app.add_typer(bench_app, name="bench")
train_app = _typer("Train small add-ons to a frozen model.")
app.add_typer(train_app, name="train")

console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)  # paths stay whole


def log(text: str) -> None:
    """A progress line of a command: never cut into lines by rich (at 80 columns when piped,
    which broke the estimate's lines mid-sentence); the terminal wraps what is too long."""
    console.print(text, soft_wrap=True)


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
