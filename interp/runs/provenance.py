"""Which code made a run: the git commit of the source tree, and a fingerprint of the code
itself.

A run can be reused in place of a new one only when the code that made it is the code that
would make it now (the atlas reuses its parts' runs this way). The package version alone does
not say that during development, and a commit alone misses edits in the working tree. The
fingerprint hashes the content of every file of ``interp``, ``circuits`` and
``pyproject.toml`` that git tracks or would track, as it is on disk: committing code that
already ran leaves it unchanged, and any edit or new file changes it.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``interp`` package: the checkout's root in a development install."""
CODE = ("interp", "circuits", "pyproject.toml")
"""What a run's numbers depend on: run outputs, notebooks and docs do not change them."""


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(SOURCE_ROOT), *args], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def _in_checkout() -> bool:
    return (SOURCE_ROOT / "interp").is_dir() and _git("rev-parse", "HEAD") is not None


@functools.cache
def source_commit() -> str | None:
    """The checkout's ``HEAD``, with ``+`` when the code has uncommitted changes; None outside a
    git checkout (an installed wheel: its version then stands for the code)."""
    if not _in_checkout():
        return None
    sha = (_git("rev-parse", "HEAD") or "").strip()
    dirty = _git("status", "--porcelain", "--", *CODE)
    return sha + ("+" if dirty else "")


@functools.cache
def code_fingerprint() -> str | None:
    """16 hex digits that change exactly when the code changes (see the module docstring);
    None outside a git checkout."""
    if not _in_checkout():
        return None
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard", "--", *CODE) or ""
    digest = hashlib.sha256()
    for name in sorted(set(listed.split())):
        path = SOURCE_ROOT / name
        if path.is_file():  # a file deleted but not yet committed is simply gone
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
