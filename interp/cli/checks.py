"""Checks that run before any work: each bad input gets one message, and nothing is written.

A command calls these after typer has checked each option on its own (see :mod:`options`)
and before it creates a run directory or loads weights, in order of cost: the output folder
(a stat), the model (its name, and the files of its folder), the task (a name), then the
prompts (the tokenizer alone, no weights), whose length is estimated from a few 1-shot and
2-shot prompts, so that ``--shots 3000`` is refused in a second instead of failing after the
model has loaded, or running out of memory.
"""

from __future__ import annotations

import errno
import math
import os
import random
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

from interp.errors import IclscopeError, write_error

_PROBES = 8
"""Prompts drawn per shot count to estimate the prompt length."""


def int_list(text: str, option: str, minimum: int = 0, example: str = "0,1,2,4,8") -> list[int]:
    """``"0,1,2"`` as integers, each at least ``minimum``."""
    return _number_list(
        text, option, int, "integers", f"integers >= {minimum}", example, lambda v: v >= minimum
    )


def float_list(text: str, option: str, example: str = "0.1,0.5") -> list[float]:
    """``"0.1,0.5"`` as positive finite numbers (rates)."""
    return _number_list(
        text,
        option,
        float,
        "numbers",
        "positive finite numbers",
        example,
        lambda v: math.isfinite(v) and v > 0,
    )


def _number_list(text, option, kind, what, need, example, ok) -> list:
    """A comma-separated list of ``kind``, refused unless every value is ``ok``."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise IclscopeError(
            f"{option} {text!r} is not a comma-separated list of {what}",
            fix=f"write e.g. {option} {example}",
        ) from None
    if not values or not all(ok(v) for v in values):
        raise IclscopeError(f"{option} {text!r} needs {need}", fix=f"write e.g. {option} {example}")
    return values


def output_folder(path: Path, option: str = "--out") -> None:
    """Refuse an output folder that cannot be created, without creating it (a later check may
    still refuse the command, and then nothing must have changed on disk): its nearest
    existing parent must take a new folder, which a scratch folder made and removed there
    shows (permissions alone do not: root may write anywhere, and ``/proc`` takes nothing)."""
    if path.exists() and not path.is_dir():
        raise IclscopeError(
            f"{option} {path} is a file, not a folder",
            fix=f"pass a folder to {option} (it is created if missing)",
        )
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise IclscopeError(
            f"{option} {path} cannot be created: {parent} is a file",
            fix=f"pass a folder to {option}",
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".iclscope-probe-", dir=parent))
    except OSError as err:
        problem = write_error(path, err)
        raise IclscopeError(f"{option}: {problem.problem}", fix=problem.fix) from None


def model_folder(spec: str) -> str:
    """The model's folder: a typo in the name, a missing folder or a damaged file in it is
    refused here, before any run directory exists (see :func:`interp.models.resolve_spec`).
    Every command that loads a model passes here first, so transformers' progress bars are
    turned off here (see :mod:`interp.cli.progress`)."""
    from interp.cli.progress import library_bars_off
    from interp.models import resolve_spec
    from interp.models.registry import MODELS

    entry = MODELS.get(spec)
    library_bars_off(converting=entry is not None and not entry.ready())
    return resolve_spec(spec)[0]


def task(name: str, kind: str | None = None, option: str = "--task"):
    """The task family, refused with the nearest names when unknown, or when it is not of
    ``kind`` (patching and the circuit need classification families)."""
    from interp.tasks.suite import families, get_family

    family = get_family(name)
    if kind is not None and family.kind != kind:
        if family.source == "file":
            what = "read" if family.origin.kind_inferred else "given"
            raise IclscopeError(
                f"{option} {family.origin.path} was {what} as a {family.kind} task; this "
                f"command needs a {kind} task",
                fix=f"pass --kind {kind} if the file is one, or use another file",
            )
        names = ", ".join(f.name for f in families(kind=kind, source=family.source))
        raise IclscopeError(
            f"{option} {name} is a {family.kind} family; this command needs a {kind} family",
            fix=f"use one of: {names}",
        )
    return family


def prompts(
    folder: str, spec: str, names: Sequence[str], shots: Sequence[int], option: str = "--shots"
) -> None:
    """Refuse a family the model's tokenizer cannot build, and a shot count whose prompts do
    not fit the model's context or exceed what the family can draw. Loads the tokenizer and
    the config only."""
    from transformers import AutoConfig, AutoTokenizer

    from interp.models.gguf_cache import prepend_bos
    from interp.models.interface import ModelConfig
    from interp.prompts import PromptBuilder
    from interp.tasks.suite import family_support, get_family

    tokenizer = AutoTokenizer.from_pretrained(folder)
    n_ctx = ModelConfig.from_hf(spec, AutoConfig.from_pretrained(folder)).n_ctx
    builder = PromptBuilder(tokenizer, prepend_bos=prepend_bos(folder), labels="first")
    most = max(shots)
    for name in names:
        family = get_family(name)
        reason = family_support(family, tokenizer)
        if reason is not None:
            raise IclscopeError(
                f"--task {name} cannot be built with {spec}'s tokenizer: {reason}",
                fix=f"see `iclscope tasks --model {spec}`",
            )
        if family.kind == "classification" and family.source == "file":
            from interp.tasks.scoring import refuse_first_token_collisions

            refuse_first_token_collisions(
                tokenizer, family.labels, what=f"--task {name}: the labels"
            )
        if family.kind in ("classification", "function"):
            _fits(builder, family, most, n_ctx, spec, option)
            _drawable(family, most, option)


def _prompt_length(builder, family) -> tuple[float, float]:
    """Tokens of a prompt with no demonstration and per demonstration, from the mean length of
    a few 1-shot and 2-shot prompts (the template and the family's own items)."""
    rng = random.Random(f"fit:{family.name}")
    mean = {}
    for k in (1, 2):
        batch = builder.build(family.template, [family.sample(rng, k) for _ in range(_PROBES)])
        mean[k] = sum(a.length for a in batch.annotations) / _PROBES
    per_shot = max(mean[2] - mean[1], 1.0)
    return mean[1] - per_shot, per_shot


def _fits(builder, family, shots: int, n_ctx: int | None, spec: str, option: str) -> None:
    base, per_shot = _prompt_length(builder, family)
    tokens = base + shots * per_shot
    if n_ctx and tokens > n_ctx:
        most = max(0, int((n_ctx - base) // per_shot))
        raise IclscopeError(
            f"{option} {shots} makes {family.name} prompts of about {tokens:,.0f} tokens "
            f"({base:.0f} + {per_shot:.1f} per shot), more than the {n_ctx}-token context "
            f"of {spec}",
            fix=f"use {option} {most} or fewer, or a model with a longer context",
        )


def _drawable(family, shots: int, option: str) -> None:
    """A family with a finite pool of items cannot draw more distinct demonstrations."""
    try:
        family.sample(random.Random(0), shots)
    except (ValueError, IclscopeError) as err:
        problem = err.problem if isinstance(err, IclscopeError) else str(err)
        raise IclscopeError(
            f"{option} {shots} is more demonstrations than {family.name} can draw ({problem})",
            fix=f"use a smaller {option}",
        ) from None


def runs_folder(path: Path) -> None:
    """The explorer's runs folder must exist: an empty page for a typo helps no one."""
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise IclscopeError(
            f"--runs {path} {what}", fix="pass the folder your runs were written into (--out)"
        )


def port_free(address: str, port: int) -> None:
    """Refuse a port that another server holds, before Streamlit starts and dies on it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind((address, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise IclscopeError(
                    f"--port {port} is already in use on {address}",
                    fix="pass another --port, or stop the server on it",
                ) from None
            raise IclscopeError(
                f"cannot serve on {address}:{port} ({err.strerror})",
                fix="pass another --address or --port",
            ) from None
