"""Which code made a run: the git commit of the source tree, with a fingerprint of any changes
not yet committed.

A run can be reused in place of a new one only when the code that made it is the code that
would make it now (the atlas reuses its parts' runs this way). The package version alone does
not say that during development, and a commit alone misses edits in the working tree, so the
commit carries ``+`` and a short hash of ``git diff HEAD`` when the tree has changes.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``interp`` package: the checkout's root in a development install."""


@functools.cache
def source_commit() -> str | None:
    """``<sha>`` or ``<sha>+<12 hex digits of the diff>``; None outside a git checkout (an
    installed wheel: its version then stands for the code)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(SOURCE_ROOT), *args],
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha or not (SOURCE_ROOT / "interp").is_dir():
        return None
    # only the code: run outputs, notebooks' outputs and docs do not change what a run computes
    code = ("interp", "circuits", "pyproject.toml")
    diff = git("diff", "HEAD", "--", *code) or ""
    new = (git("ls-files", "--others", "--exclude-standard", "--", *code) or "").split()
    digest = hashlib.sha256(diff.encode())
    for name in sorted(n for n in new if n.endswith(".py")):  # new modules are code too
        digest.update(name.encode() + (SOURCE_ROOT / name).read_bytes())
    changed = f"+{digest.hexdigest()[:12]}" if diff or new else ""
    return sha.strip() + changed
