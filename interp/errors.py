"""One error type for everything a user can get wrong, so the CLI can print it cleanly."""

from __future__ import annotations


class IclscopeError(Exception):
    """A problem with the user's input: says what is wrong and how to fix it.

    The CLI prints these without a traceback and exits non-zero.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}. Fix: {fix}")
