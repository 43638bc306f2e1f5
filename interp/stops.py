"""Stopping a training loop promptly and cleanly on Ctrl-C or SIGTERM.

The CLI turns both signals into :class:`~interp.errors.Interrupted` (``interp.cli``), but
Python runs a signal handler only between bytecodes of the main thread. A training step's
``loss.backward()`` is one call into C++ that takes a minute on a loaded 2-core machine
(BlockRank on SmolLM2), and torch offers no way to interrupt it: there is no cancel API, and
the engine returns to Python only to run hooks. That is the way in. On CPU the autograd engine
runs the backward pass on the calling thread, so a Python tensor hook runs on the main thread,
the pending handler runs inside it, and the ``Interrupted`` it raises leaves ``backward()``
unchanged. :func:`stop_points` puts a no-op hook on each layer's output, which bounds the delay
of a stop by one layer's backward instead of the whole step's.

A stop must not land in the middle of something that has to finish once started: an optimiser
step that has updated half the parameters, or a record half written. :func:`deferred_stops`
holds a stop until the end of such a block.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterable, Iterator

from torch import Tensor, nn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_point(grad: Tensor) -> None:
    """A tensor hook that does nothing: running it gives a pending stop its chance."""
    return None


def _first_grad_tensor(output) -> Tensor | None:
    if isinstance(output, Tensor):
        return output if output.requires_grad else None
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_grad_tensor(item)
            if found is not None:
                return found
    return None


def _mark(module: nn.Module, args, output) -> None:
    found = _first_grad_tensor(output)
    if found is not None:
        found.register_hook(_stop_point)


@contextlib.contextmanager
def stop_points(modules: Iterable[nn.Module]) -> Iterator[None]:
    """While open, every forward of ``modules`` whose output carries a gradient leaves a stop
    point in the backward pass (modules run without a graph, such as frozen layers below a
    LoRA cut, cost nothing)."""
    handles = [m.register_forward_hook(_mark) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def layer_modules(model: nn.Module) -> list[nn.Module]:
    """The decoder layers of a Hugging Face causal LM and their direct children (attention,
    MLP, norms): stop points about two per layer. Found as the longest ``ModuleList``, which is
    ``model.layers`` on Llama and Gemma and ``transformer.h`` on GPT-2."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        return [model]
    layers = max(lists, key=len)
    return [m for layer in layers for m in (layer, *layer.children())]


@contextlib.contextmanager
def deferred_stops() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first one that came to
    the handler that was there before. Only Python handlers are held: a signal whose action is
    the default (SIGTERM outside the CLI) still ends the process at once, as it would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for signum in STOP_SIGNALS:
        if callable(signal.getsignal(signum)):
            previous[signum] = signal.signal(signum, lambda s, frame: caught.append(s))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        signal.raise_signal(caught[0])
