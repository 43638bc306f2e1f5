"""Atomic file writes: a reader sees either the previous complete file or the new complete
file, never a half-written one.

Run directories, saved gates and trained models are read while they are being written (the
app polls runs, a notebook loads one mid-run) and a writer can die at any instant (Ctrl-C, OOM,
preemption). Writing to a temp file in the same directory, fsyncing it and renaming it over the
target with ``os.replace`` makes each file appear whole or not at all. These helpers sit at the
bottom of the package so that anything that saves a file can use them without depending on the
run-directory format.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so readers never see a partial file."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself; not possible everywhere
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
