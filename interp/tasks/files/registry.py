"""The task files read in this process, by family name.

A file family shadows a built-in family of the same name (the file was named on purpose).
Kept in a module of its own, free of torch, so that reading a file stays quick.
"""

from __future__ import annotations

from interp.errors import IclscopeError
from interp.tasks.family import TaskFamily

FILE_FAMILIES: dict[str, TaskFamily] = {}


def register_family(family: TaskFamily) -> str:
    """Make ``family`` reachable by its name (``get_family``, every analysis, the manifest);
    return the name."""
    if family.source != "file":
        raise IclscopeError(f"only file families can be registered, not {family.name!r}")
    FILE_FAMILIES[family.name] = family
    return family.name
