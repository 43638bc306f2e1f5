"""The ``iclscope`` command line.

Every way a command can stop ends in one clear line, never a traceback (see :func:`main`):

* a usage error (a misspelt option or command, an option without its value, a number out of
  range, a name outside a closed set) prints the usage hint and exits 2;
* a bad input found by a check (:mod:`interp.cli.checks`) or a damaged or unwritable file
  prints ``error:`` and ``fix:`` and exits 2;
* Ctrl-C or SIGTERM prints ``interrupted`` and exits 128 + the signal (130, 143); a run
  directory being written marks itself ``interrupted``.

The commands live by theme: :mod:`~interp.cli.info` (models, tasks, inspect, show),
:mod:`~interp.cli.analyses` (eval, demo, run patch, run circuit),
:mod:`~interp.cli.organism`, :mod:`~interp.cli.bench` and :mod:`~interp.cli.serve` (app);
:mod:`~interp.cli.options` holds the shared options. This module imports none of them until
:func:`main` runs, so its stop-signal handlers are in place before anything slow happens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from interp.errors import IclscopeError, Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RETRY_SECONDS = 0.05
"""How long a stop signal that came during an import waits before it is sent again."""
_retries: list[threading.Timer] = []


def _importing(frame) -> bool:
    """Whether a module is being imported: its frames sit on top of importlib's."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _raise_interrupted(signum: int, frame) -> None:
    """Raise :class:`Interrupted`, but never inside an import: an exception there leaves a
    half-made module in ``sys.modules`` (seen: numpy recursing into itself, transformers then
    reporting a missing ``LlamaConfig``), so the signal is sent again once it is over."""
    if _importing(frame):
        timer = threading.Timer(RETRY_SECONDS, os.kill, (os.getpid(), signum))
        _retries.append(timer)
        timer.start()
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`~interp.errors.Interrupted` while the command runs:
    SIGTERM would otherwise end the process on the spot, with no chance to mark its run, and
    typer would turn Ctrl-C into a silent exit. The previous handlers come back afterwards
    (``main`` is also called in-process, by tests and notebooks); a stop that was still
    waiting for an import to finish is raised then."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        late = [t.args[1] for t in _retries if not t.finished.is_set()]
        for timer in _retries:
            timer.cancel()
        _retries.clear()
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
    if late:  # reached only when the command itself ended without an exception
        raise Interrupted(late[0])


def _load_app():
    """The Typer app with every command registered (importing a module registers its own)."""
    from interp.cli import (  # noqa: F401
        analyses,
        atlas,
        bench,
        block_relevance,
        eviction,
        info,
        organism,
        serve,
        task_vectors,
    )
    from interp.cli.app import app

    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one command and return its exit status (see the module docstring)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        with stop_signals():
            code = _load_app()(args=argv, standalone_mode=False, prog_name="iclscope")
    except IclscopeError as err:
        return _print_error(err)
    except Interrupted as stop:
        return _print_interrupted(stop.name, stop.exit_code)
    except EOFError:  # a prompt met the end of its input
        return _print_interrupted("end of input", 1)
    except Exception as err:
        from typer import TyperException  # its usage errors (typer vendors its own click)

        if not isinstance(err, TyperException):
            raise
        return _print_usage_error(err, sys.argv[1:] if argv is None else argv)
    finally:
        from interp.cli.progress import restore_library_bars

        restore_library_bars()
    if code == 130:  # a KeyboardInterrupt that typer turned into Exit(130) (not main thread)
        return _print_interrupted("SIGINT", 130)
    return code if isinstance(code, int) else 0


def _print_error(err: IclscopeError) -> int:
    from rich.markup import escape

    from interp.cli.app import err_console

    err_console.print("[bold red]error:[/]", escape(err.problem))
    if err.fix:
        err_console.print("[bold]fix:[/]", escape(err.fix))
    return 2


def _print_usage_error(err, argv: list[str]) -> int:
    """Typer's message with its usage line, or a help hint where typer has none to give
    (an option without its value)."""
    if hasattr(err, "show"):
        err.show()
    else:
        print(f"Error: {err}", file=sys.stderr)
    if getattr(err, "ctx", False) is None:
        words = []
        for word in argv:  # the command's path: the words before its first option
            if word.startswith("-"):
                break
            words.append(word)
        print(f"Try 'iclscope {' '.join([*words, '--help'])}' for help.", file=sys.stderr)
    return err.exit_code


def _print_interrupted(why: str, code: int) -> int:
    print(f"interrupted ({why})", file=sys.stderr, flush=True)
    return code


def __getattr__(name: str):
    if name == "app":  # ``from interp.cli import app`` still gives the Typer app
        return _load_app()
    raise AttributeError(name)
