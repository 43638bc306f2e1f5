"""``show`` on a folder of runs lists them, and never tells anyone to delete a folder."""

from __future__ import annotations

from interp.cli import main
from interp.runs.store import RunWriter


def test_show_lists_a_folder_of_runs(tmp_path, capsys):
    with RunWriter(tmp_path, kind="patch", model="organism", task="sentiment_semantic", run_id="a"):
        pass
    with RunWriter(tmp_path, kind="circuit", model="smollm2", task="nl_sentiment_natural"):
        pass
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "manifest.json").write_text("{not json")
    (tmp_path / "notes").mkdir()  # not a run: left out
    assert main(["show", str(tmp_path)]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].split() == ["id", "kind", "model", "task", "status", "date", "(UTC)"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"a", "damaged", next(p.name for p in tmp_path.glob("circuit-*"))}
    assert rows["a"][1:5] == ["patch", "organism", "sentiment_semantic", "complete"]
    assert rows["a"][5].startswith("20")  # the date it started
    circuit = next(r for k, r in rows.items() if k.startswith("circuit-"))
    assert circuit[1:5] == ["circuit", "smollm2", "nl_sentiment_natural", "complete"]
    assert rows["damaged"][1:5] == ["-", "-", "-", "broken"]
    assert "delete" not in out.out + out.err and "next: iclscope show" in out.err


def test_show_on_a_folder_without_runs_never_says_delete(tmp_path, capsys):
    (tmp_path / "my-files").mkdir()
    (tmp_path / "my-files" / "thesis.tex").write_text("keep me")
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no run directories" in err and "delete" not in err
    assert (tmp_path / "my-files" / "thesis.tex").read_text() == "keep me"
