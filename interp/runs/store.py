"""Run directories: one folder per run with manifest, summary, tables, figures and a report.

Layout: ``<root>/<run_id>/{manifest.json, summary.json, <table>.parquet, figures/<name>.json,
report.md, report.html}``.

Every file is written atomically (temp file in the same directory, fsync, ``os.replace``). Runs
are read while they are being written (the app polls ``list_runs``, a notebook calls ``load_run``
mid-run) and a run can die at any instant (Ctrl-C, OOM, preemption). With atomic replacement a
reader sees either the previous complete file or the new complete file, never a half-written one,
so an unparsable file in a run directory means real damage rather than a race with the writer.

A run's status says how it ended: ``running``, ``complete``, ``failed`` (an error),
``interrupted`` (Ctrl-C or SIGTERM). A run killed outright (SIGKILL, OOM, power loss) cannot
write anything, so the manifest also records the writing process (pid, host and start time):
a ``running`` run whose process is gone from this host reads as ``stale``
(:func:`run_status`). A write that fails (full disk, no permission) raises an
:class:`~interp.errors.IclscopeError` naming the file; what was written before stays intact.
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
import shutil
import sys
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

from interp.errors import IclscopeError, Interrupted, write_error
from interp.io import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-export)
from interp.runs.process import run_status, this_process
from interp.runs.provenance import code_fingerprint, source_commit
from interp.runs.reports import markdown_to_html, render_report_html  # noqa: F401 (re-export)

UTC = timezone.utc
SCHEMA_VERSION = 1
_PACKAGES = ("torch", "transformers", "transformer_lens", "nnsight", "iclscope")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FIX = "re-run the command that made it, or delete the directory"
_ID_ATTEMPTS = 50
"""Fresh suffixes tried when a generated run id is taken (runs started in the same second)."""


@contextlib.contextmanager
def _writing(path: Path):
    """Turn a failed write of ``path`` into one message naming it (see errors.write_error)."""
    try:
        yield
    except OSError as err:
        raise write_error(path, err) from None


def _save(path: Path, data: bytes) -> None:
    with _writing(path):
        atomic_write_bytes(path, data)


def _write_json(path: Path, obj: Any) -> None:
    default = lambda o: o.item() if hasattr(o, "item") else str(o)  # numpy scalars
    _save(path, (json.dumps(obj, indent=2, default=default) + "\n").encode("utf-8"))


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
        self._fixed_id = run_id is not None
        self.run_id = run_id if run_id is not None else self._new_id()
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
            "process": this_process(),
            "command": cmd if isinstance(cmd, str) else [str(a) for a in cmd],
            "model": model,
            "task": task,
            "seed": seed if seed is None or isinstance(seed, int) else list(seed),
            "versions": _versions(),
            "commit": source_commit(),
            "code": code_fingerprint(),
            "timings": {"started": None, "finished": None, "seconds": None},
            "error": None,
            "params": dict(params or {}),
        }
        self._summary: dict[str, Any] = {}
        self._figures: dict[str, go.Figure] = {}
        self._t0 = 0.0

    def _new_id(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return f"{self.kind}-{stamp}-{secrets.token_hex(2)}"

    def _claim_directory(self) -> None:
        """Create the run directory; a generated id that another run took in the same second
        is drawn again, so runs started together into one folder all get their own."""
        with _writing(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(_ID_ATTEMPTS):
            try:
                with _writing(self.path):
                    self.path.mkdir()
                return
            except IclscopeError:
                if not self.path.is_dir():
                    raise
                if self._fixed_id:
                    raise IclscopeError(
                        f"run directory {self.path} already exists",
                        "choose another run_id, or delete the old run directory",
                    ) from None
            self.run_id = self.manifest["run_id"] = self._new_id()
            self.path = self.root / self.run_id
        raise IclscopeError(
            f"no free run id in {self.root} after {_ID_ATTEMPTS} tries",
            fix="pass another --out folder",
        )

    def __enter__(self) -> RunWriter:
        self._claim_directory()
        self._t0 = time.monotonic()
        self.manifest["timings"]["started"] = datetime.now(UTC).isoformat()
        try:
            _write_json(self.path / "manifest.json", self.manifest)
        except BaseException:  # full disk, or a stop signal: leave no run without a manifest
            shutil.rmtree(self.path, ignore_errors=True)
            raise
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
        stopped = isinstance(exc, (Interrupted, KeyboardInterrupt))
        status = "complete" if exc is None else "interrupted" if stopped else "failed"
        self.manifest["status"] = status
        self.manifest["error"] = None if exc is None else f"{type(exc).__name__}: {exc}"
        if stopped and not str(exc):
            self.manifest["error"] = "interrupted by SIGINT"  # a bare KeyboardInterrupt
        try:
            _write_json(self.path / "manifest.json", self.manifest)
        except IclscopeError:
            if exc is None:
                raise
            # the first error is the one to report (often the same full disk); the manifest
            # still says running, and reads as stale once this process has ended

    def table(self, name: str, df: pd.DataFrame) -> Path:
        """Save ``df`` as ``<name>.parquet``."""
        out = self.path / f"{_check_name(name, 'table')}.parquet"
        buf = io.BytesIO()
        df.to_parquet(buf)
        _save(out, buf.getvalue())
        return out

    def figure(self, name: str, fig: go.Figure) -> Path:
        """Save a plotly figure as ``figures/<name>.json``."""
        out = self.path / "figures" / f"{_check_name(name, 'figure')}.json"
        with _writing(out.parent):
            out.parent.mkdir(exist_ok=True)
        _save(out, fig.to_json().encode("utf-8"))
        self._figures[name] = fig
        return out

    def artifact(self, filename: str, text: str) -> Path:
        """Save another text file (e.g. ``plan.json``) in the run directory."""
        stem, dot, ext = filename.partition(".")
        out = self.path / f"{_check_name(stem, 'artifact')}{dot}{_check_name(ext, 'extension')}"
        _save(out, text.encode("utf-8"))
        return out

    def params(self, values: dict[str, Any]) -> None:
        """Record parameters decided during the run (e.g. the suite a model can build)."""
        self.manifest["params"].update(values)
        _write_json(self.path / "manifest.json", self.manifest)

    def executor(self, record: dict[str, Any]) -> None:
        """Record how the plan's chunks ran in the manifest: the executor, its workers, the
        retries of chunks whose worker died, and any chunks that never finished."""
        self.manifest["executor"] = record
        _write_json(self.path / "manifest.json", self.manifest)

    def summary(self, values: dict[str, Any]) -> None:
        """Merge ``values`` into summary.json."""
        self._summary.update(values)
        _write_json(self.path / "summary.json", self._summary)

    def report(self, markdown: str) -> None:
        """Write report.md and report.html (with every figure written so far)."""
        _save(self.path / "report.md", markdown.encode("utf-8"))
        page = render_report_html(self.run_id, markdown, self._figures)
        _save(self.path / "report.html", page.encode("utf-8"))


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
        """See :func:`run_status`: ``stale`` for a running run whose process is gone."""
        return run_status(self.manifest)


def _read_json(path: Path, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if not required:
            return {}
        raise IclscopeError(f"{path} is missing; the run directory is incomplete", _FIX)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        empty = path.stat().st_size == 0 if path.is_file() else False
        what = "is empty" if empty else f"is unreadable or not valid JSON ({e})"
        raise IclscopeError(f"{path} {what}", _FIX) from None
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
    for key, kind in _MANIFEST_FIELDS.items():
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            raise IclscopeError(
                f"{run_dir / 'manifest.json'} is corrupt: {key!r} is a "
                f"{type(manifest[key]).__name__}, not a {kind.__name__}",
                _FIX,
            )
    return manifest


_MANIFEST_FIELDS = {"status": str, "kind": str, "timings": dict, "params": dict}
"""Manifest fields whose type a reader relies on."""


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
        try:
            run.report = (run_dir / "report.md").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise IclscopeError(f"{run_dir / 'report.md'} is unreadable ({e})", _FIX) from None
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
            entry |= {k: m.get(k) for k in ("kind", "model", "task", "command")}
            entry["status"] = run_status(m)
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
