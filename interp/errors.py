"""What can stop a command: a user's mistake, a damaged or unwritable file, or a stop signal.

* :class:`IclscopeError`: a problem the user can fix; the CLI prints its problem and fix as
  one message and exits 2, never with a traceback.
* :func:`read_error` and :func:`write_error` turn the ``OSError`` of one file into an
  :class:`IclscopeError` that names the file and says what to do, so every reader and writer
  words the same fault the same way.
* :class:`Interrupted`: Ctrl-C or SIGTERM. It derives from ``BaseException`` (as
  ``KeyboardInterrupt`` does) so that no ``except Exception`` on the way can swallow it, and a
  run directory that sees it marks itself ``interrupted``.
"""

from __future__ import annotations

import errno
import os
import signal


class IclscopeError(Exception):
    """A problem with the user's input: says what is wrong and how to fix it.

    The CLI prints these without a traceback and exits non-zero.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}. Fix: {fix}")


class Interrupted(BaseException):
    """The process was asked to stop (SIGINT from Ctrl-C, or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_code(self) -> int:
        """The shell convention: 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signum


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_error(path: str | os.PathLike[str], err: OSError) -> IclscopeError:
    """The message for a failed write of ``path``: full disk, no permission, a file where a
    folder should be, or a path that cannot exist (``/proc/x``)."""
    reason = err.strerror or str(err)
    if err.errno in _NO_SPACE:
        return IclscopeError(
            f"no space left to write {path}",
            fix="free some disk space, or write somewhere else (--out); files written before "
            "are intact",
        )
    if err.errno in _NOT_ALLOWED:
        return IclscopeError(
            f"{path} is not writable ({reason})", fix="pass a folder you can write to (--out)"
        )
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        return IclscopeError(
            f"cannot create {path}: a file is in the way ({reason})",
            fix="pass a folder, or a path that does not exist yet",
        )
    return IclscopeError(
        f"cannot write {path} ({reason})", fix="pass a path in a folder you can write to (--out)"
    )


def read_error(path: str | os.PathLike[str], err: OSError, fix: str) -> IclscopeError:
    """The message for a file that exists (or should) but cannot be read."""
    if err.errno == errno.ENOENT:
        return IclscopeError(f"{path} is missing", fix=fix)
    return IclscopeError(f"{path} cannot be read ({err.strerror or err})", fix=fix)
