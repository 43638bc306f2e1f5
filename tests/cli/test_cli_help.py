"""The help tells the truth and reads cleanly; every command runs the same model by default
and says so."""

from __future__ import annotations

import pytest
import typer.main

from interp.cli import _load_app, main, options

OWN_DEFAULT = {"organism eval": "organism"}
"""Commands whose --model default is not the shared one, and why: ``organism eval`` scores
the organism's own synthetic language, which no pretrained model speaks."""


def leaf_commands() -> list[tuple[str, object]]:
    """Every command of the app as (its words, its click command)."""

    def walk(command, words):
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            return [(" ".join(words), command)]
        return [pair for name, sub in subcommands.items() for pair in walk(sub, [*words, name])]

    return walk(typer.main.get_command(_load_app()), [])


def help_text(words: str, capsys, monkeypatch, columns: int = 100) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main([*words.split(), "--help"]) == 0
    return capsys.readouterr().out


def test_every_model_option_has_the_one_default():
    defaults = {
        words: param.default
        for words, command in leaf_commands()
        for param in command.params
        if "--model" in getattr(param, "opts", ())
    }
    assert {"eval", "demo", "run patch", "run circuit", "inspect", "bench patching"} <= set(
        defaults
    )
    assert defaults.pop("tasks") is None  # an optional filter there, not a model to run
    for words, default in OWN_DEFAULT.items():
        assert defaults.pop(words) == default
    assert options.DEFAULT_MODEL == "smollm2"
    assert set(defaults.values()) == {options.DEFAULT_MODEL}, defaults


@pytest.mark.parametrize("words", ["run patch", "run circuit", "demo", "inspect"])
def test_the_default_model_is_in_the_help(words, capsys, monkeypatch):
    assert "[default: smollm2]" in help_text(words, capsys, monkeypatch)


def test_a_run_names_the_default_model(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main(["run", "patch", "--out", str(a_file)]) == 2  # refused after the options
    err = capsys.readouterr().err
    assert "model: smollm2 (the default; --model to change)" in err and "--out" in err
    assert main(["run", "patch", "--model", "organism", "--out", str(a_file)]) == 2
    assert "model:" not in capsys.readouterr().err  # named on the command line: not repeated


def test_the_help_says_what_the_demo_runs(capsys, monkeypatch):
    top = help_text("", capsys, monkeypatch)
    assert "first report on SmolLM2-135M (smollm2" in top
    assert "report on the embedded model organism" not in top
    demo = " ".join(help_text("demo", capsys, monkeypatch).split())
    assert "then run the ICL circuit (unless --no-pipeline)" in demo
    assert "(with --pipeline)" not in demo  # it is the default, not something to ask for
    assert "[default: pipeline]" not in demo


def test_no_help_shows_a_bool_placeholder(capsys, monkeypatch):
    for words, _ in leaf_commands():
        text = help_text(words, capsys, monkeypatch)
        assert "<bool>" not in text, words
        assert "[default: no-" not in text, words  # a flag's default reads as a flag's name


def test_run_patch_help_reads_cleanly_at_100_columns(capsys, monkeypatch):
    text = help_text("run patch", capsys, monkeypatch)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert not any(ch in text for ch in "│╭╰─")  # plain text, no panels
    words = " ".join(text.split())
    # square brackets in our help were read as markup and vanished
    assert "[fit a 1 GiB budget]" in words and "[this machine's]" in words
    # each option's help starts beside it and runs in one wide column, not a narrow one
    model = next(i for i, line in enumerate(lines) if line.lstrip().startswith("--model"))
    assert "A registered name (see `iclscope models`)" in lines[model]
    assert "--per-position " in text and "--no-per-position" not in text
    # the command list gives each command one whole line
    for group in ("", "run", "bench", "train", "organism"):
        listing = help_text(group, capsys, monkeypatch).split("Commands:")[1]
        assert "..." not in listing, group  # cut short
