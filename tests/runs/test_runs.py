"""Tests for interp.runs.store: run directories, atomic writes, loading and listing runs.
How runs end (interrupted, stale, many at once) is in test_run_lifecycle.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from run_store_helpers import _df, _fig, _write_run

from interp.errors import IclscopeError
from interp.runs import store as runs
from interp.runs.store import (
    RunWriter,
    atomic_write_bytes,
    atomic_write_text,
    list_runs,
    load_run,
    markdown_to_html,
    resolve_run,
)


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_round_trip(tmp_path: Path) -> None:
    cmd = ["iclscope", "demo", "--seed", "0"]
    with RunWriter(
        tmp_path,
        kind="demo",
        model="organism",
        task="copy",
        seed=[0, 1],
        command=cmd,
        params={"n": 3},
    ) as run:
        run.table("effects", _df())
        run.figure("curve", _fig([1.0, 4.0, 9.0]))
        run.summary({"accuracy": 0.5, "n": 3})
        run.summary({"accuracy": 0.75})
        run.report("# Demo\n\nSome text.")
    assert run.path.parent == tmp_path
    assert run.path.name.startswith("demo-")
    loaded = load_run(run.path)
    pd.testing.assert_frame_equal(loaded.tables["effects"], _df())
    assert list(loaded.figures["curve"].data[0].y) == [1.0, 4.0, 9.0]
    assert loaded.summary == {"accuracy": 0.75, "n": 3}
    assert loaded.report == "# Demo\n\nSome text."
    m = loaded.manifest
    assert m["status"] == "complete" and loaded.status == "complete"
    assert m["schema_version"] == 1
    assert m["run_id"] == run.path.name and m["kind"] == "demo"
    assert m["command"] == cmd and m["model"] == "organism" and m["task"] == "copy"
    assert m["seed"] == [0, 1] and m["params"] == {"n": 3} and m["error"] is None
    assert m["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert {"torch", "transformers", "transformer_lens", "nnsight", "iclscope"} <= set(
        m["versions"]
    )
    assert m["timings"]["seconds"] >= 0
    assert m["timings"]["started"] <= m["timings"]["finished"]
    assert (run.path / "report.html").is_file()


def test_manifest_says_running_inside_context(tmp_path: Path) -> None:
    with RunWriter(tmp_path, kind="patch") as run:
        loaded = load_run(run.path)
        assert loaded.manifest["status"] == "running"
        assert loaded.manifest["timings"]["finished"] is None
        assert loaded.summary == {} and loaded.tables == {} and loaded.report is None
    assert load_run(run.path).status == "complete"


def test_exception_marks_failed_and_keeps_files(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), RunWriter(tmp_path, kind="circuit") as run:
        run.table("effects", _df())
        run.summary({"step": 1})
        raise RuntimeError("boom at step 2")
    loaded = load_run(run.path)
    assert loaded.status == "failed"
    assert "boom at step 2" in loaded.manifest["error"]
    assert loaded.manifest["timings"]["seconds"] >= 0
    pd.testing.assert_frame_equal(loaded.tables["effects"], _df())
    assert loaded.summary == {"step": 1}


def test_report_html_inlines_plotly_once(tmp_path: Path) -> None:
    md = "# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\nx < y\n```\n"
    with RunWriter(tmp_path, kind="demo") as run:
        for i in range(3):
            run.figure(f"fig{i}", _fig([float(i), 1.0]))
        run.report(md)
    text = (run.path / "report.html").read_text()
    assert text.count("plotly.js v") == 1
    assert text.count("window.PlotlyConfig") == 1
    assert text.count('class="plotly-graph-div"') == 3
    assert "<script src=" not in text  # nothing fetched from a CDN: opens offline
    assert "<h1>Title</h1>" in text and "<li>two</li>" in text
    assert "<th>a</th>" in text and "<td>2</td>" in text and "x &lt; y" in text
    assert (run.path / "report.md").read_text() == md


def test_markdown_to_html_paragraphs_and_escaping() -> None:
    out = markdown_to_html("first line\nsame para with `<code>`\n\n## Sub **bold**\n")
    assert "<p>first line same para with <code>&lt;code&gt;</code></p>" in out
    assert "<h2>Sub <strong>bold</strong></h2>" in out


def _corrupt_manifest(path: Path) -> str:
    (path / "manifest.json").write_text("{not json")
    return "manifest.json"


def _missing_manifest(path: Path) -> str:
    (path / "manifest.json").unlink()
    return "manifest.json"


def _bad_schema(path: Path) -> str:
    m = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(m | {"schema_version": 99}))
    return "manifest.json"


def _corrupt_parquet(path: Path) -> str:
    (path / "effects.parquet").write_bytes(b"PAR1 this is not parquet")
    return "effects.parquet"


def _corrupt_figure(path: Path) -> str:
    (path / "figures" / "fig0.json").write_text('{"data": [')
    return "fig0.json"


def _corrupt_summary(path: Path) -> str:
    (path / "summary.json").write_text("[1, 2")
    return "summary.json"


@pytest.mark.parametrize(
    "damage",
    [
        _corrupt_manifest,
        _missing_manifest,
        _bad_schema,
        _corrupt_parquet,
        _corrupt_figure,
        _corrupt_summary,
    ],
)
def test_corrupt_run_raises_naming_file(tmp_path: Path, damage) -> None:
    path = _write_run(tmp_path, "r1", figures=1)
    filename = damage(path)
    with pytest.raises(IclscopeError) as info:
        load_run(path)
    assert filename in str(info.value)
    assert info.value.fix is not None and "re-run" in info.value.fix


def test_load_run_on_non_directory(tmp_path: Path) -> None:
    with pytest.raises(IclscopeError, match="not a run directory"):
        load_run(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(IclscopeError, match="not a run directory"):
        load_run(tmp_path / "file")


def test_list_runs_marks_broken_and_sorts_newest_first(tmp_path: Path) -> None:
    _write_run(tmp_path, "old")
    _write_run(tmp_path, "new")
    for name, started in (
        ("old", "2020-01-01T00:00:00+00:00"),
        ("new", "2030-01-01T00:00:00+00:00"),
    ):
        mpath = tmp_path / name / "manifest.json"
        m = json.loads(mpath.read_text())
        m["timings"]["started"] = started
        mpath.write_text(json.dumps(m))
    broken = _write_run(tmp_path, "broken")
    (broken / "manifest.json").write_text("garbage")
    (tmp_path / "empty").mkdir()
    (tmp_path / "stray-file.txt").write_text("not a run")

    entries = list_runs(tmp_path)
    by_id = {e["run_id"]: e for e in entries}
    assert set(by_id) == {"old", "new", "broken", "empty"}
    assert by_id["broken"]["status"] == "broken"
    assert "manifest.json" in by_id["broken"]["reason"]
    assert by_id["empty"]["status"] == "broken" and "missing" in by_id["empty"]["reason"]
    assert by_id["new"]["status"] == "complete" and by_id["new"]["reason"] is None
    assert by_id["new"]["summary"] == {"accuracy": 0.9}
    assert by_id["new"]["kind"] == "demo" and by_id["new"]["model"] == "organism"
    assert by_id["new"]["path"] == str(tmp_path / "new")
    ids = [e["run_id"] for e in entries]
    assert ids.index("new") < ids.index("old")
    assert list_runs(tmp_path / "does-not-exist") == []


def test_resolve_run_accepts_a_run_name(tmp_path: Path) -> None:
    path = _write_run(tmp_path, "good")
    assert resolve_run(tmp_path, "good") == path.resolve()
    with pytest.raises(IclscopeError, match="no run named"):
        resolve_run(tmp_path, "missing")


@pytest.mark.parametrize("name", ["../x", "..", ".", "", "a/../../x", "good/../good", "a\\b"])
def test_resolve_run_refuses_traversal(tmp_path: Path, name: str) -> None:
    _write_run(tmp_path / "root", "good")
    (tmp_path / "x").mkdir()
    with pytest.raises(IclscopeError):
        resolve_run(tmp_path / "root", name)


def test_resolve_run_refuses_absolute_path(tmp_path: Path) -> None:
    path = _write_run(tmp_path, "good")
    with pytest.raises(IclscopeError):
        resolve_run(tmp_path, str(path))
    with pytest.raises(IclscopeError):
        resolve_run(tmp_path, "/etc")


def test_resolve_run_refuses_escaping_symlink(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _write_run(root, "good")
    outside = _write_run(tmp_path / "elsewhere", "secret")
    os.symlink(outside, root / "evil")
    os.symlink(root / "good", root / "alias")  # a link that stays inside root is fine
    os.symlink(root, root / "itself")  # the root is not a run
    for name in ("evil", "itself"):
        with pytest.raises(IclscopeError):
            resolve_run(root, name)
    assert resolve_run(root, "alias") == (root / "good").resolve()


def test_no_temp_files_left_behind(tmp_path: Path) -> None:
    _write_run(tmp_path, "r1", figures=2, report=True)
    with pytest.raises(ValueError), RunWriter(tmp_path, kind="demo") as run:
        run.summary({"a": 1})
        raise ValueError("x")
    assert _temp_files(tmp_path) == []
    assert sorted(p.name for p in run.path.iterdir()) == ["manifest.json", "summary.json"]


def test_atomic_write_failure_keeps_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data.json"
    atomic_write_text(target, "old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(runs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("name", ["../evil", "a b", "", "a.b", "x/y", "ü"])
def test_unsafe_names_refused(tmp_path: Path, name: str) -> None:
    with RunWriter(tmp_path, kind="demo") as run:
        with pytest.raises(IclscopeError, match="safe file name"):
            run.table(name, _df())
        with pytest.raises(IclscopeError, match="safe file name"):
            run.figure(name, _fig([1.0]))
    assert sorted(p.name for p in run.path.iterdir()) == ["manifest.json"]
    assert not (tmp_path / "evil.parquet").exists()


@pytest.mark.parametrize("run_id", ["../escape", "a/b", ".hidden", ""])
def test_unsafe_run_id_refused(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(IclscopeError):
        RunWriter(tmp_path, kind="demo", run_id=run_id)


def test_existing_run_id_refused(tmp_path: Path) -> None:
    path = _write_run(tmp_path, "same")
    before = (path / "manifest.json").read_text()
    writer = RunWriter(tmp_path, kind="demo", run_id="same")
    with pytest.raises(IclscopeError, match="already exists"):
        writer.__enter__()
    assert (path / "manifest.json").read_text() == before
    assert load_run(path).status == "complete"


def test_generated_run_ids_are_unique_and_well_formed(tmp_path: Path) -> None:
    ids = set()
    for _ in range(3):
        with RunWriter(tmp_path, kind="patch") as run:
            ids.add(run.path.name)
    assert len(ids) == 3
    for run_id in ids:
        kind, date, clock, suffix = run_id.split("-")
        assert kind == "patch" and len(date) == 8 and len(clock) == 6
        assert len(suffix) == 4 and int(suffix, 16) >= 0
