"""Running the atlas's parts, or reusing runs that already computed them.

Each part is a whole run of a registered analysis through the one runner
(:func:`~interp.analysis.runner.run_analysis`), written as its own run directory beside the
atlas's, so every number the atlas shows can be traced to a run that a reader can open on its
own. A run already in the output folder is reused in place of a new one when it is complete and
was made by the same code (:func:`~interp.runs.provenance.code_fingerprint`) for the same model,
task, seed and config: the atlas of a model then costs only what was never computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from circuits.atlas.config import Part
from interp.analysis.base import Log
from interp.analysis.runner import run_analysis
from interp.runs.provenance import code_fingerprint
from interp.runs.store import list_runs, load_run


@dataclass(frozen=True)
class PartRun:
    """Where a part's run directory is, and whether it was reused rather than computed."""

    kind: str
    path: Path
    reused: bool


def _plain(value):
    """A value as its manifest stores it (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def matches(manifest: dict, part: Part, model: str, code: str | None) -> bool:
    """Whether a run's manifest is ``part`` on ``model``, made by the code of fingerprint
    ``code`` (:func:`~interp.runs.provenance.code_fingerprint`)."""
    params = manifest.get("params") or {}
    wanted = _plain(part.config.params())
    return (
        code is not None
        and manifest.get("code") == code
        and manifest.get("kind") == part.kind
        and manifest.get("model") == model
        and manifest.get("task") == part.task
        and manifest.get("seed") == part.config.seed
        and all(params.get(k) == v for k, v in wanted.items())
    )


def find_reusable(out: Path, part: Part, model: str) -> Path | None:
    """The newest complete run under ``out`` that :func:`matches` ``part``, or None."""
    code = code_fingerprint()
    for entry in list_runs(out):  # newest first
        if entry["status"] != "complete" or entry["kind"] != part.kind:
            continue
        manifest = load_run(entry["path"]).manifest
        if matches(manifest, part, model, code):
            return Path(entry["path"])
    return None


def run_parts(
    parts: list[Part], model: str, out: Path, executor=None, log: Log = print, command=None
) -> list[PartRun]:
    """Each part's run directory under ``out``: reused where :func:`find_reusable` finds one,
    else computed now (its run directory is complete before the next part starts, so a stop
    keeps every part finished so far for the next atlas to reuse)."""
    done = []
    for i, part in enumerate(parts, start=1):
        found = find_reusable(out, part, model)
        if found is not None:
            log(f"[{i}/{len(parts)}] {part.kind} on {part.task}: reusing {found.name}")
            done.append(PartRun(part.kind, found, True))
            continue
        log(f"[{i}/{len(parts)}] {part.kind} on {part.task}: running ...")
        path = run_analysis(
            part.kind,
            part.config,
            out=out,
            model=model,
            task=part.task,
            executor=executor,
            log=log,
            command=command,
        )
        done.append(PartRun(part.kind, Path(path), False))
    return done
