"""Run directories: one folder per run with manifest, summary, tables, figures and a report.

Layout: ``<root>/<run_id>/{manifest.json, summary.json, <table>.parquet, figures/<name>.json,
report.md, report.html}``.

Every file is written atomically (temp file in the same directory, fsync, ``os.replace``). Runs
are read while they are being written (the app polls ``list_runs``, a notebook calls ``load_run``
mid-run) and a run can die at any instant (Ctrl-C, OOM, preemption). With atomic replacement a
reader sees either the previous complete file or the new complete file, never a half-written one,
so an unparsable file in a run directory means real damage rather than a race with the writer.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import platform
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pyarrow as pa

from interp.errors import IclscopeError
from interp.reports import markdown_to_html, render_report_html  # noqa: F401 (re-export)

UTC = timezone.utc
SCHEMA_VERSION = 1
_PACKAGES = ("torch", "transformers", "transformer_lens", "nnsight", "iclscope")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FIX = "re-run the command that made it, or delete the directory"


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


def _write_json(path: Path, obj: Any) -> None:
    default = lambda o: o.item() if hasattr(o, "item") else str(o)  # numpy scalars
    atomic_write_text(path, json.dumps(obj, indent=2, default=default) + "\n")


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise IclscopeError(
            f"{what} name {name!r} is not a safe file name",
            "use only letters, digits, '_' and '-'",
        )
    return name


class RunWriter:
    """Context manager that creates and fills one run directory; see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        kind: str,
        model: str | None = None,
        task: str | None = None,
        seed: int | Sequence[int] | None = None,
        command: Sequence[str] | str | None = None,
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.kind = _check_name(kind, "run kind")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.run_id = run_id if run_id is not None else f"{kind}-{stamp}-{secrets.token_hex(2)}"
        if not _SAFE_RUN_ID.fullmatch(self.run_id):
            raise IclscopeError(
                f"run id {self.run_id!r} is not a safe directory name",
                "use letters, digits, '_', '-' and '.', starting with a letter or digit",
            )
        self.path = self.root / self.run_id
        cmd = list(sys.argv) if command is None else command
        self.manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "kind": kind,
            "status": "running",
            "command": cmd if isinstance(cmd, str) else [str(a) for a in cmd],
            "model": model,
            "task": task,
            "seed": seed if seed is None or isinstance(seed, int) else list(seed),
            "versions": _versions(),
            "timings": {"started": None, "finished": None, "seconds": None},
            "error": None,
            "params": dict(params or {}),
        }
        self._summary: dict[str, Any] = {}
        self._figures: dict[str, go.Figure] = {}
        self._t0 = 0.0

    def __enter__(self) -> RunWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir()
        except FileExistsError:
            raise IclscopeError(
                f"run directory {self.path} already exists",
                "choose another run_id, or delete the old run directory",
            ) from None
        self._t0 = time.monotonic()
        self.manifest["timings"]["started"] = datetime.now(UTC).isoformat()
        _write_json(self.path / "manifest.json", self.manifest)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        timings = self.manifest["timings"]
        timings["finished"] = datetime.now(UTC).isoformat()
        timings["seconds"] = round(time.monotonic() - self._t0, 3)
        self.manifest["status"] = "complete" if exc is None else "failed"
        self.manifest["error"] = None if exc is None else f"{type(exc).__name__}: {exc}"
        _write_json(self.path / "manifest.json", self.manifest)  # exception (if any) re-raises

    def table(self, name: str, df: pd.DataFrame) -> Path:
        """Save ``df`` as ``<name>.parquet``."""
        out = self.path / f"{_check_name(name, 'table')}.parquet"
        buf = io.BytesIO()
        df.to_parquet(buf)
        atomic_write_bytes(out, buf.getvalue())
        return out

    def figure(self, name: str, fig: go.Figure) -> Path:
        """Save a plotly figure as ``figures/<name>.json``."""
        out = self.path / "figures" / f"{_check_name(name, 'figure')}.json"
        out.parent.mkdir(exist_ok=True)
        atomic_write_text(out, fig.to_json())
        self._figures[name] = fig
        return out

    def artifact(self, filename: str, text: str) -> Path:
        """Save another text file (e.g. ``plan.json``) in the run directory."""
        stem, dot, ext = filename.partition(".")
        out = self.path / f"{_check_name(stem, 'artifact')}{dot}{_check_name(ext, 'extension')}"
        atomic_write_text(out, text)
        return out

    def params(self, values: dict[str, Any]) -> None:
        """Record parameters decided during the run (e.g. the suite a model can build)."""
        self.manifest["params"].update(values)
        _write_json(self.path / "manifest.json", self.manifest)

    def summary(self, values: dict[str, Any]) -> None:
        """Merge ``values`` into summary.json."""
        self._summary.update(values)
        _write_json(self.path / "summary.json", self._summary)

    def report(self, markdown: str) -> None:
        """Write report.md and report.html (with every figure written so far)."""
        atomic_write_text(self.path / "report.md", markdown)
        page = render_report_html(self.run_id, markdown, self._figures)
        atomic_write_text(self.path / "report.html", page)


@dataclass
class Run:
    """A loaded run directory."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, go.Figure] = field(default_factory=dict)
    report: str | None = None

    @property
    def status(self) -> str:
        return str(self.manifest.get("status"))


def _read_json(path: Path, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if not required:
            return {}
        raise IclscopeError(f"{path} is missing; the run directory is incomplete", _FIX)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IclscopeError(f"{path} is unreadable or not valid JSON ({e})", _FIX) from None
    if not isinstance(data, dict):
        raise IclscopeError(f"{path} should hold a JSON object, not {type(data).__name__}", _FIX)
    return data


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise IclscopeError(f"{run_dir} is not a run directory", "check the path to the run")
    manifest = _read_json(run_dir / "manifest.json", required=True)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise IclscopeError(
            f"{run_dir / 'manifest.json'} has schema_version "
            f"{manifest.get('schema_version')!r}; this iclscope reads {SCHEMA_VERSION}",
            f"use the iclscope version that wrote it, or {_FIX}",
        )
    return manifest


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load everything in a run directory; raise IclscopeError naming any damaged file."""
    run_dir = Path(path)
    manifest = _read_manifest(run_dir)
    run = Run(path=run_dir, manifest=manifest, summary=_read_json(run_dir / "summary.json", False))
    for file in sorted(run_dir.glob("*.parquet")):
        try:
            run.tables[file.stem] = pd.read_parquet(file)
        except (OSError, ValueError, pa.ArrowException) as e:
            raise IclscopeError(f"{file} is not a readable parquet table ({e})", _FIX) from None
    for file in sorted((run_dir / "figures").glob("*.json")):
        try:
            run.figures[file.stem] = pio.from_json(file.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, KeyError) as e:  # bad JSON or bad figure
            raise IclscopeError(f"{file} is not a readable plotly figure ({e})", _FIX) from None
    if (run_dir / "report.md").is_file():
        run.report = (run_dir / "report.md").read_text(encoding="utf-8")
    return run


def list_runs(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One dict per run directory under ``root``, newest first; broken runs get status "broken"."""
    root_dir = Path(root)
    if not root_dir.is_dir():
        return []
    entries: list[tuple[str, dict[str, Any]]] = []
    for d in root_dir.iterdir():
        mtime = ""
        if not d.is_dir() or d.name.startswith("."):
            continue
        entry: dict[str, Any] = {"run_id": d.name, "path": str(d), "status": "broken"}
        entry |= dict.fromkeys(("reason", "kind", "model", "task", "started", "command"))
        entry["summary"] = {}
        try:
            m = _read_manifest(d)
            entry["summary"] = _read_json(d / "summary.json", required=False)
            entry |= {k: m.get(k) for k in ("kind", "model", "task", "command", "status")}
            entry["started"] = (m.get("timings") or {}).get("started")
        except IclscopeError as e:
            entry["status"], entry["reason"] = "broken", e.problem
        with contextlib.suppress(OSError):  # newest first; broken runs sort by mtime
            mtime = datetime.fromtimestamp(d.stat().st_mtime, UTC).isoformat()
        entries.append((str(entry["started"] or mtime), entry))
    entries.sort(key=lambda t: (t[0], t[1]["run_id"]), reverse=True)
    return [e for _, e in entries]


def resolve_run(root: str | os.PathLike[str], name: str) -> Path:
    """Turn an untrusted run name (URL, widget) into a run directory that lies inside ``root``."""
    bad = IclscopeError(
        f"run name {name!r} does not name a run inside {root}",
        "pass just the run id as shown by list_runs",
    )
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise bad
    if Path(name).is_absolute() or Path(name).drive:
        raise bad
    root_dir = Path(root).resolve()
    target = (root_dir / name).resolve()
    if not target.is_relative_to(root_dir) or target == root_dir:
        raise bad
    if not target.is_dir():
        raise IclscopeError(f"no run named {name!r} in {root}", "pick one from list_runs")
    return target
