"""The options that several commands share, with their checks built in.

Every check that needs nothing but the value happens while typer parses the command line:
numbers carry their range (``min=``/``max=``, so ``--shots -3`` or ``--prompts 0`` is a usage
error naming the option), and closed sets are ``Literal`` types (so ``--metric foo`` lists
the choices). Nothing is loaded before these pass.

The closed sets repeat the names the library defines (``interp.runs.patch.COMPONENTS``,
``interp.patching.metrics.MetricName`` ...) because importing those modules imports torch, which
would make every usage error take seconds; ``tests/test_cli_errors.py`` checks that the two
lists agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

Metric = Literal["logit_diff", "prob", "acc", "kl"]
Component = Literal["heads", "resid", "mlp", "edges"]
Ablation = Literal["mean", "zero", "resample"]
Backend = Literal["transformer_lens", "nnsight"]
Device = Literal["cuda", "cpu"]
Dtype = Literal["float32", "bfloat16"]
KernelSize = Literal["small", "tiny"]

MODEL_HELP = "A registered name (see `iclscope models`) or a local Hugging Face folder."
MAX_PORT = 65_535


def model(default: str) -> Any:
    return typer.Option(default, help=MODEL_HELP)


def out_folder(help: str = "Runs folder (created if missing).") -> Any:
    return typer.Option(Path("runs"), help=help)


def seed(default: int = 0, help: str = "Random seed.") -> Any:
    return typer.Option(default, min=0, help=help)


def shots(default: int = 4, help: str = "Demonstrations per prompt.") -> Any:
    return typer.Option(default, min=0, help=help)


def count(default: int | None, help: str) -> Any:
    """A number of things (prompts, rows, repeats ...): at least 1."""
    return typer.Option(default, min=1, help=help)


def _positive(value: float | None) -> float | None:
    if value is not None and not value > 0:  # also refuses nan
        raise typer.BadParameter(f"{value} is not a positive number")
    return value


def positive(default: float, help: str) -> Any:
    """A rate or a duration: strictly above 0."""
    return typer.Option(default, callback=_positive, help=help)
