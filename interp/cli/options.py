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
Executor = Literal["local", "ray"]

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


def _ray_address(value: str | None) -> str | None:
    """``auto`` or ``HOST:PORT`` (``None``: start Ray on this machine)."""
    if value is None or value == "auto":
        return value
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
        raise typer.BadParameter(f"{value!r} is not 'auto' or HOST:PORT")
    return value


def executor() -> Any:
    return typer.Option("local", help="Where the plan's chunks run: here, or on Ray workers.")


def ray_address() -> Any:
    return typer.Option(
        None,
        callback=_ray_address,
        help="With --executor ray: 'auto' (this node's cluster) or HOST:PORT of the head "
        "[start Ray on this machine].",
    )


def workers() -> Any:
    return typer.Option(2, min=1, help="With --executor ray: worker actors (one model each).")


def max_retries() -> Any:
    return typer.Option(
        3, min=0, help="With --executor ray: times a chunk is retried when its worker dies."
    )


def max_batch() -> Any:
    return typer.Option(
        None, min=1, help="Rows per forward pass of the engine [fit a 1 GiB budget]."
    )


DRY_RUN_HELP = (
    "Print the engine plans' rows, chunks, forward passes and peak memory per "
    "worker (model + sources + one chunk); run nothing, write nothing."
)
DRY_RUN_CHUNKS_HELP = (
    "Print the prompts, chunks, forward passes and peak memory per worker (model + one "
    "chunk's activations); run nothing, write nothing."
)


def dry_run(help: str = DRY_RUN_HELP) -> Any:
    return typer.Option(False, "--dry-run", help=help)


def memory_budget() -> Any:
    return typer.Option(
        None, min=0.0, help="GiB one worker may use; a plan over it is refused [this machine's]."
    )
