"""The ``--task`` argument: built-in family names and task files, alone or comma-separated.

Each file is read once (before any model loads), registered under its family name, and
replaced by that name, so every command and analysis downstream works on names as it always
has; the family keeps its :class:`~interp.tasks.files.load.TaskOrigin` for the manifest.
"""

from __future__ import annotations

from pathlib import Path

from interp.errors import IclscopeError
from interp.tasks.files.load import TaskFileOptions, from_file
from interp.tasks.files.read import TABLE_FORMATS
from interp.tasks.files.registry import register_family


def is_task_path(part: str) -> bool:
    """Whether one ``--task`` entry names a file or folder rather than a built-in family."""
    return (
        "/" in part
        or Path(part).suffix.lower() in TABLE_FORMATS
        or (Path(part).exists() and not part.isidentifier())
    )


def resolve_task_argument(value: str | None, options: TaskFileOptions | None = None) -> str | None:
    """``value`` with every task file replaced by its registered family name."""
    if value is None:
        return None
    options = options or TaskFileOptions()
    parts = [p.strip() for p in value.split(",") if p.strip()]
    files = [p for p in parts if is_task_path(p)]
    if not files:
        if _file_only(options):
            raise IclscopeError(
                "--columns, --kind, --template, --separator and --label-prefix apply to task "
                f"files, and --task {value} names none",
                fix="pass --task PATH, or drop those options",
            )
        return value
    names: dict[str, str] = {}
    out = []
    for part in parts:
        if part not in files:
            out.append(part)
            continue
        family = from_file(part, options)
        if family.name in names and names[family.name] != family.origin.path:
            raise IclscopeError(
                f"{names[family.name]} and {family.origin.path} would both be the task "
                f"{family.name!r}",
                fix="rename one of the files",
            )
        names[family.name] = family.origin.path
        out.append(register_family(family))
    return ",".join(out)


def _file_only(options: TaskFileOptions) -> bool:
    return bool(
        options.columns
        or options.kind
        or options.template
        or options.separator is not None
        or options.label_prefix is not None
    )
