"""Every file the tool reads can be missing, empty, truncated or corrupt; every path it writes
can be unwritable, a file, or on a full disk. Each case is one message naming the file, with
no traceback, and nothing written before is damaged.

Damaged copies are made in a temporary folder, one file at a time: of the organism's model
folder (config, weights, tokenizer), of a GGUF file in a stand-in package, of a converted
model in the cache, and of a run directory (manifest, summary, tables, figures, report).
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from interp.cli import main
from interp.errors import IclscopeError
from interp.models import ORGANISM_DIR, resolve_spec
from interp.runs import store as runs
from interp.runs.store import RunWriter, list_runs, load_run


def _missing(path: Path) -> None:
    path.unlink()


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt(path: Path) -> None:
    """Garbage over the start of the file, where every format keeps its header."""
    data = path.read_bytes()
    path.write_bytes(data[:5] + b"\x00\xff garbage {{[" + data[20:])


def _wrong_shape(path: Path) -> None:
    """Valid JSON, but not what the file should hold."""
    path.write_text("[1, 2, 3]")


DAMAGE = {"missing": _missing, "empty": _empty, "truncated": _truncated, "corrupt": _corrupt}


@pytest.fixture
def model_copy(tmp_path) -> Path:
    folder = tmp_path / "organism"
    shutil.copytree(ORGANISM_DIR, folder)
    return folder


# -- the model folder -------------------------------------------------------------------------
MODEL_FILES = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
]
OPTIONAL = {"tokenizer_config.json", "generation_config.json"}  # transformers does without them


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", MODEL_FILES)
def test_damaged_model_file_is_named(model_copy, name, damage):
    DAMAGE[damage](model_copy / name)
    if damage == "missing" and name in OPTIONAL:
        assert resolve_spec(str(model_copy))[0] == str(model_copy)
        return
    with pytest.raises(IclscopeError) as info:
        resolve_spec(str(model_copy))
    assert name in info.value.problem and info.value.fix


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_model_json_of_the_wrong_shape_is_named(model_copy, name):
    _wrong_shape(model_copy / name)
    with pytest.raises(IclscopeError, match=name):
        resolve_spec(str(model_copy))


def test_weights_with_trailing_bytes_are_corrupt(model_copy):
    with (model_copy / "model.safetensors").open("ab") as f:
        f.write(b"\x00" * 16)
    with pytest.raises(IclscopeError, match="model.safetensors is corrupt"):
        resolve_spec(str(model_copy))


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "--model", "{m}"],
        ["organism", "eval", "--model", "{m}", "--n", "2"],
        ["tasks", "--model", "{m}"],
        ["eval", "--model", "{m}", "--task", "sentiment_semantic"],
        ["run", "patch", "--model", "{m}", "--out", "{out}"],
    ],
    ids=["inspect", "organism eval", "tasks", "eval", "run patch"],
)
def test_every_command_names_the_damaged_weights(model_copy, tmp_path, capsys, args):
    _truncated(model_copy / "model.safetensors")
    out = tmp_path / "runs"
    code = main([a.format(m=model_copy, out=out) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and "model.safetensors is truncated" in err and "Traceback" not in err
    assert not out.exists()  # refused before a run directory was made


def test_the_shipped_organism_is_checked_too(monkeypatch, tmp_path, capsys):
    """A damaged install says to reinstall; `iclscope models` reports it rather than crash."""
    from interp.models import registry

    broken = tmp_path / "installed"
    shutil.copytree(ORGANISM_DIR, broken)
    _corrupt(broken / "tokenizer.json")
    monkeypatch.setattr(registry, "ORGANISM_DIR", broken)
    run_patch = ["run", "patch", "--model", "organism", "--out", str(tmp_path / "runs")]
    for args in (["models"], run_patch):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "tokenizer.json" in err and "reinstall iclscope" in err
    assert not (tmp_path / "runs").exists()


def test_a_damaged_converted_model_says_how_to_rebuild(monkeypatch, tmp_path):
    monkeypatch.setenv("ICLSCOPE_CACHE", str(tmp_path / "cache"))
    folder = Path(resolve_spec("tiny-llama")[0])
    _truncated(folder / "model.safetensors")
    with pytest.raises(IclscopeError) as info:
        resolve_spec("tiny-llama")
    assert "model.safetensors" in info.value.problem and f"delete {folder}" in info.value.fix


# -- GGUF files -----------------------------------------------------------------------------
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_gguf_file_is_named(tmp_path, monkeypatch, damage):
    """A stand-in package ships the file; its pinned SHA-256 is that of the good copy."""
    from interp.models.gguf_cache import GgufSource, convert

    package = tmp_path / "site" / "fake_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    gguf = package / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    source = GgufSource(
        "fake_gguf_pkg",
        ("fake-gguf-pkg==1.0",),
        "model.gguf",
        hashlib.sha256(gguf.read_bytes()).hexdigest(),
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    DAMAGE[damage](gguf)
    target = tmp_path / "cache" / "fake"
    with pytest.raises(IclscopeError) as info:
        convert("fake", source, target)
    assert "model.gguf" in info.value.problem and "reinstall" in info.value.fix
    assert not target.exists() and list((tmp_path / "cache").iterdir()) == []  # no leftovers


# -- run directories ------------------------------------------------------------------------
def _write_run(root: Path) -> Path:
    with RunWriter(root, kind="demo", run_id="r1") as run:
        run.table("effects", pd.DataFrame({"layer": [0, 1], "effect": [0.5, 1.5]}))
        run.figure("curve", go.Figure(go.Scatter(x=[0, 1], y=[1.0, 2.0])))
        run.summary({"accuracy": 0.9})
        run.report("# Report\n\nhello")
    return run.path


RUN_FILES = ["manifest.json", "summary.json", "effects.parquet", "figures/curve.json", "report.md"]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", RUN_FILES)
def test_damaged_run_file_is_named(tmp_path, capsys, name, damage):
    path = _write_run(tmp_path)
    DAMAGE[damage](path / name)
    if damage == "missing" and name != "manifest.json":  # a run may stop before any of these
        assert load_run(path).status == "complete"
        return
    if name == "report.md" and damage != "corrupt":  # an empty or cut report is still text
        load_run(path)
        return
    with pytest.raises(IclscopeError) as info:
        load_run(path)
    assert Path(name).name in info.value.problem and info.value.fix
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert Path(name).name in err and "Traceback" not in err
    (entry,) = list_runs(tmp_path)  # the list still shows the run (it reads these two)
    assert entry["status"] == (
        "broken" if name in ("manifest.json", "summary.json") else "complete"
    )


@pytest.mark.parametrize("field, value", [("timings", "soon"), ("status", 3), ("params", [])])
def test_manifest_fields_of_the_wrong_type_are_named(tmp_path, field, value):
    path = _write_run(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(manifest | {field: value}))
    with pytest.raises(IclscopeError, match=f"manifest.json is corrupt: '{field}'"):
        load_run(path)
    assert list_runs(tmp_path)[0]["status"] == "broken"


# -- writing --------------------------------------------------------------------------------
def _fail_writes(monkeypatch, err: int, when=lambda path: True) -> list[Path]:
    """Make the run writer's atomic writes fail with ``err`` for the paths ``when`` picks."""
    tried: list[Path] = []
    real = runs.atomic_write_bytes

    def write(path, data):
        tried.append(Path(path))
        if when(Path(path)):
            raise OSError(err, errno.errorcode[err], str(path))
        real(path, data)

    monkeypatch.setattr(runs, "atomic_write_bytes", write)
    return tried


@pytest.mark.parametrize(
    "err, words",
    [
        (errno.ENOSPC, "no space left"),
        (errno.EACCES, "not writable"),
        (errno.EROFS, "not writable"),
        (errno.EIO, "cannot write"),
    ],
)
def test_a_failed_write_names_the_file_and_keeps_what_was_written(
    tmp_path, monkeypatch, err, words
):
    _fail_writes(monkeypatch, err, when=lambda p: p.name == "summary.json")
    with pytest.raises(IclscopeError) as info, RunWriter(tmp_path, kind="demo") as run:
        run.table("effects", pd.DataFrame({"a": [1]}))
        run.summary({"accuracy": 0.5})
    assert words in info.value.problem and "summary.json" in info.value.problem
    loaded = load_run(run.path)  # intact: the table, and a manifest that says what happened
    assert loaded.status == "failed" and "summary.json" in loaded.manifest["error"]
    assert list(loaded.tables) == ["effects"]


def test_a_full_disk_at_the_start_leaves_no_run(tmp_path, monkeypatch):
    _fail_writes(monkeypatch, errno.ENOSPC)
    with pytest.raises(IclscopeError, match="no space left"):
        with RunWriter(tmp_path, kind="demo"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_mid_run_keeps_the_first_error(tmp_path, monkeypatch):
    """The manifest cannot be updated either: the first error is the one reported, and the
    manifest written at the start stays whole (it reads as stale once the process is gone)."""
    run = RunWriter(tmp_path, kind="demo")
    with pytest.raises(IclscopeError, match="results.parquet"), run:
        _fail_writes(monkeypatch, errno.ENOSPC)
        run.table("results", pd.DataFrame({"a": [1]}))
    assert load_run(run.path).status == "running"  # whole, and this process is still alive
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_cli_full_disk_mid_run(tmp_path, monkeypatch, capsys):
    """`run patch` on a full disk: one message naming the file, the run marked failed."""
    _fail_writes(monkeypatch, errno.ENOSPC, when=lambda p: p.name == "plan.json")
    code = main(["run", "patch", "--model", "organism", "--prompts", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no space left to write" in err and "plan.json" in err
    assert "Traceback" not in err
    (run_dir,) = tmp_path.iterdir()
    assert load_run(run_dir).status == "failed"


@pytest.mark.parametrize(
    "err, words", [(errno.ENOSPC, "no space left"), (errno.EACCES, "not writable")]
)
def test_organism_train_write_errors_name_the_path(tmp_path, monkeypatch, capsys, err, words):
    import interp.organism.train as train_module

    target = tmp_path / "new" / "model.safetensors"

    def fail(out, cfg, log):
        raise OSError(err, errno.errorcode[err], str(target))

    monkeypatch.setattr(train_module, "train", fail)
    assert main(["organism", "train", "--out", str(tmp_path / "new"), "--max-steps", "1"]) == 2
    text = capsys.readouterr().err
    assert words in text and str(target) in text and "Traceback" not in text
