"""``--task PATH`` from the command line: described by ``tasks``, run through an analysis with its
origin in the manifest, and every bad file refused with one message before anything is written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from interp.cli import main
from interp.organism import language as lang

ANIMALS, COLORS = lang.CLASS_WORDS["animal"], lang.CLASS_WORDS["color"]


@pytest.fixture
def organism_csv(tmp_path):
    """A classification file in the organism's words: its word-level tokenizer builds it."""
    rows = [{"text": w, "label": "animal"} for w in ANIMALS]
    rows += [{"text": w, "label": "color"} for w in COLORS]
    path = tmp_path / "organism_sentiment.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_tasks_describes_a_file_as_json(organism_csv, capsys):
    assert main(["tasks", "--task", str(organism_csv), "--model", "organism", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "organism_sentiment" and info["kind"] == "classification"
    assert info["rows"] == 48 and info["labels"] == {"animal": 24, "color": 24}
    assert info["splits"] == {"train": 33, "valid": 5, "test": 10} and info["split_made"]
    assert info["builds"] is True and info["answer_tokens"]["one_token_share"] == 1.0
    assert info["scores"] == ["first-token", "exact"] and info["first_token_collisions"] == []


def test_run_patch_on_a_file_records_its_origin(organism_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ICLSCOPE_STATIC_FIGURES", "0")
    out = tmp_path / "runs"
    args = ["run", "patch", "--model", "organism", "--task", str(organism_csv), "--prompts", "2"]
    assert main([*args, "--out", str(out)]) == 0
    (run,) = out.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["task"] == "organism_sentiment" and manifest["status"] == "complete"
    origin = manifest["params"]["task_files"]["organism_sentiment"]
    assert origin["path"] == str(organism_csv) and origin["columns"] == {"x": "text", "y": "label"}
    import hashlib

    assert origin["sha256"] == hashlib.sha256(organism_csv.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (b"", [], "is empty"),
        (b'{"input": "a"}', [], "not a list of objects"),
        (b'[{"input": "cat", "output": }]', [], "not valid JSON at line 1"),
        (b'[{"a": "cat", "b": "red"}]', [], "its columns: a, b"),
        (b'[{"a": "cat", "b": "red"}]', ["--columns", "x=a,y=c"], "no column 'c'"),
        (b"PAR1\x00\x00", [], "is a parquet file"),
    ],
)
def test_bad_task_files_are_refused_before_any_work(tmp_path, capsys, content, extra, message):
    path = tmp_path / "task.json"
    path.write_bytes(content)
    out = tmp_path / "runs"
    code = main(["run", "patch", "--model", "organism", "--task", str(path), *extra,
                 "--out", str(out)])  # fmt: skip
    text = "".join(capsys.readouterr())
    assert code != 0 and "Traceback" not in text and message in text, text
    assert "task.json" in text and not out.exists()


def test_file_options_need_a_file_and_kinds_must_fit(organism_csv, capsys):
    assert main(["eval", "--model", "organism", "--task", "sentiment_semantic",
                 "--columns", "x=a,y=b"]) != 0  # fmt: skip
    assert "apply to task files" in "".join(capsys.readouterr())
    code = main(["run", "circuit", "--model", "organism", "--task", str(organism_csv),
                 "--kind", "function"])  # fmt: skip
    text = "".join(capsys.readouterr())
    assert code != 0 and "given as a function task" in text and "--kind classification" in text
