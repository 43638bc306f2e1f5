"""One progress bar per step: ours, without transformers' own bars nested inside.

A command announces each slow step itself (``loading smollm2 ...``, the ``converting`` and
``patching`` bars), so the bars transformers draws inside those steps ("Loading weights" on
every load, "Converting and de-quantizing GGUF tensors" on a conversion) only repeat them, three
deep in a model's first conversion. :func:`library_bars_off` turns them off once a command
is past its checks (importing transformers any earlier would slow every usage error);
:func:`restore_library_bars`, called by :func:`interp.cli.main` when the command ends, turns
them back on for a caller that runs commands in-process (a notebook, the tests).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

_undo: list[Callable[[], None]] = []


def library_bars_off(converting: bool = False) -> None:
    """Silence transformers' progress bars until :func:`restore_library_bars`; with
    ``converting``, also the GGUF reader's, which ignores transformers' switch (it draws with
    ``tqdm`` directly). A user who turned them off already keeps them off."""
    from transformers.utils import logging as hf_logging

    if hf_logging.is_progress_bar_enabled():
        hf_logging.disable_progress_bar()
        _undo.append(hf_logging.enable_progress_bar)
    if converting:
        from transformers import modeling_gguf_pytorch_utils as gguf_reader

        drawn = gguf_reader.tqdm
        if not isinstance(drawn, functools.partial):  # not silenced already
            gguf_reader.tqdm = functools.partial(drawn, disable=True)
            _undo.append(lambda: setattr(gguf_reader, "tqdm", drawn))


def restore_library_bars() -> None:
    """Undo :func:`library_bars_off`, last change first."""
    while _undo:
        _undo.pop()()
