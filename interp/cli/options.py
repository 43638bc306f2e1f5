"""The options that several commands share, with their checks built in.

Every check that needs nothing but the value happens while typer parses the command line:
numbers carry their range (``min=``/``max=``, so ``--shots -3`` or ``--prompts 0`` is a usage
error naming the option), and closed sets are ``Literal`` types (so ``--metric foo`` lists
the choices). Nothing is loaded before these pass.

The closed sets repeat the names the library defines (``circuits.activation_patching.COMPONENTS``,
``interp.engine.metrics.MetricName`` ...) because importing those modules imports torch, which
would make every usage error take seconds; ``tests/cli/test_cli_errors.py`` checks that the two
lists agree.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
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
Score = Literal["first-token", "exact"]

DEFAULT_MODEL = "smollm2"
"""The model of every command that takes ``--model`` (but ``organism eval``, whose suite is the
organism's own language): one default, so that ``demo`` and ``run patch`` never measure two
different models when the user named neither."""
MODEL_HELP = "A registered name (see `iclscope models`) or a local Hugging Face folder."
MAX_PORT = 65_535


def _name_default_model(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    """Say which model a run measures when the command line did not name one (stderr: stdout
    stays data). Options left at their default are processed after the ones given, so a
    usage error in those comes before this line."""
    source = ctx.get_parameter_source(param.name)
    if getattr(source, "name", None) in ("DEFAULT", "DEFAULT_MAP"):
        from interp.cli.app import err_console

        err_console.print(f"model: {value} (the default; --model to change)")
    return value


def model(default: str = DEFAULT_MODEL, help: str = MODEL_HELP) -> Any:
    return typer.Option(default, help=help, callback=_name_default_model)


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
    "Print the engine plans' rows, chunks, forward passes, peak memory per worker (model + "
    "sources + one chunk) and the estimated time; run nothing, write nothing."
)
DRY_RUN_CHUNKS_HELP = (
    "Print the prompts, chunks, forward passes, peak memory per worker (model + one chunk's "
    "activations) and a rough time; run nothing, write nothing."
)


def dry_run(help: str = DRY_RUN_HELP) -> Any:
    return typer.Option(False, "--dry-run", help=help)


def memory_budget() -> Any:
    return typer.Option(
        None, min=0.0, help="GiB one worker may use; a plan over it is refused [this machine's]."
    )


@dataclass(frozen=True)
class DryRunOptions:
    """``--dry-run`` and ``--memory-budget``: print the cost instead of running, and refuse a
    plan that one worker cannot hold."""

    show: bool = False
    memory_budget: float | None = None

    @property
    def wanted(self) -> bool:
        """Whether the cost is estimated before (or instead of) the run."""
        return self.show or self.memory_budget is not None


def _group_parameters(dry_run_help: str) -> list[tuple[str, Any, Any]]:
    """The shared run options: (parameter name, annotation, typer option)."""
    return [
        ("executor", Executor, executor()),
        ("ray_address", str | None, ray_address()),
        ("workers", int, workers()),
        ("max_retries", int, max_retries()),
        ("dry_run_", bool, dry_run(dry_run_help)),
        ("memory_budget", float | None, memory_budget()),
    ]


def _with_options(
    removed: tuple[str, ...],
    added: list[tuple[str, Any, Any]],
    convert: Callable[[dict], dict],
) -> Callable[[Callable], Callable]:
    """A decorator giving a command the options ``added`` (name, annotation, typer option),
    which ``convert`` turns (in place of the parameters ``removed``) into the values the
    command reads, so a group of options is declared once for every command."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in removed]
        extra = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
            for name, ann, opt in added
        ]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            return command(*args, **convert(kwargs))

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra
        wrapper.__signature__ = signature.replace(parameters=params)
        wrapper.__annotations__ = {
            p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty
        }
        return wrapper

    return decorate


def execution_options(dry_run_help: str = DRY_RUN_HELP) -> Callable[[Callable], Callable]:
    """Give a command the shared run options (``--executor``, ``--ray-address``, ``--workers``,
    ``--max-retries``, ``--dry-run``, ``--memory-budget``) as two arguments, ``execution`` (an
    :class:`~interp.analysis.runner.ExecutionOptions`) and ``estimate`` (a
    :class:`DryRunOptions`), so every command declares and reads them the same way."""
    from interp.analysis.runner import ExecutionOptions

    def convert(kwargs: dict) -> dict:
        execution = ExecutionOptions(
            executor=kwargs.pop("executor"),
            ray_address=kwargs.pop("ray_address"),
            workers=kwargs.pop("workers"),
            max_retries=kwargs.pop("max_retries"),
        )
        estimate = DryRunOptions(kwargs.pop("dry_run_"), kwargs.pop("memory_budget"))
        return {**kwargs, "execution": execution, "estimate": estimate}

    return _with_options(("execution", "estimate"), _group_parameters(dry_run_help), convert)


TaskKind = Literal["function", "classification", "ranking"]
TASK_FILE_HELP = {
    "columns": "For a task file: its input and answer columns, e.g. x=review,y=stars "
    "(also query=, documents=, answer_ids=) [input/output, text/label, sentence/label, "
    "question/answer, query/documents/answer_ids].",
    "kind": "For a task file: its kind [inferred from its columns and distinct answers].",
    "template": "For a task file: the demonstration format with {x} and {y}, e.g. "
    "'Q: {x}\\nA: {y}' [function: FV's 'Q: {x}\\nA: {y}'; classification: "
    "'sentence: {x} sentiment: {y}'].",
    "separator": "For a task file: text between demonstrations [function '\\n\\n', "
    "classification '\\n'].",
    "label_prefix": "For a classification file without --template: the text before the label "
    "[sentiment:].",
    "split_seed": "For a task file without train/valid/test splits: the seed of the 70/10/20 "
    "split made for it.",
}


def task_file_options() -> Callable[[Callable], Callable]:
    """Let ``--task`` name task files: adds ``--columns``, ``--kind``, ``--template``,
    ``--separator``, ``--label-prefix`` and ``--split-seed``, then reads each file named in
    ``--task`` (before anything heavy), registers its family and passes the command the
    family names in its place."""
    group = [
        ("columns", str | None, typer.Option(None, help=TASK_FILE_HELP["columns"])),
        ("kind", TaskKind | None, typer.Option(None, help=TASK_FILE_HELP["kind"])),
        ("template", str | None, typer.Option(None, help=TASK_FILE_HELP["template"])),
        ("separator", str | None, typer.Option(None, help=TASK_FILE_HELP["separator"])),
        ("label_prefix", str | None, typer.Option(None, help=TASK_FILE_HELP["label_prefix"])),
        ("split_seed", int, typer.Option(0, min=0, help=TASK_FILE_HELP["split_seed"])),
    ]

    def convert(kwargs: dict) -> dict:
        from interp.tasks.files.columns import parse_columns
        from interp.tasks.files.load import TaskFileOptions
        from interp.tasks.files.resolve import resolve_task_argument

        file_options = TaskFileOptions(
            columns=parse_columns(kwargs.pop("columns")),
            kind=kwargs.pop("kind"),
            template=kwargs.pop("template"),
            separator=kwargs.pop("separator"),
            label_prefix=kwargs.pop("label_prefix"),
            split_seed=kwargs.pop("split_seed"),
        )
        kwargs["task"] = resolve_task_argument(kwargs.get("task"), file_options)
        return kwargs

    return _with_options((), group, convert)
