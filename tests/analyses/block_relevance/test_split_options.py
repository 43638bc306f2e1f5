"""The seen/unseen split's options (docs/analyses/block-relevance.md): ``--unseen-share`` and
``--unseen-seed`` on ``train blockrank`` and ``run block-relevance`` reach the training record and
the run's summary, and every bad value is refused with one message naming the option and the
fix, before any model loads and with nothing written."""

from __future__ import annotations

import json
import shutil

import pytest

from circuits.block_relevance.compute import BlockRelevance
from circuits.block_relevance.documents import check_split
from circuits.block_relevance.folder import RECORD
from interp.cli import main
from interp.errors import IclscopeError


def _refused(capsys, args: list[str], *needles: str) -> str:
    """Run the command; it must exit 2 with one message holding every needle and a fix."""
    code = main(args)
    err = " ".join(capsys.readouterr().err.split())  # the console may wrap long lines
    assert code == 2, err
    assert "Traceback" not in err and err.count("error:") == 1 and "fix:" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _train(tiny_dirs, out, *extra: str) -> list[str]:
    args = ["train", "blockrank", "--model", tiny_dirs["llama"], "--task", "ranking"]
    return args + ["--docs", "5", "--layer", "1", "--out", str(out), *extra]


def _run(model: str, out, *extra: str) -> list[str]:
    args = ["run", "block-relevance", "--model", model, "--task", "ranking"]
    return args + ["--prompts", "4", "--docs", "4", "--out", str(out), *extra]


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--unseen-share", "1.5"], ["--unseen-share 1.5", "between 0 and 1"]),
        (["--unseen-share", "-0.1"], ["--unseen-share -0.1", "between 0 and 1"]),
        (["--unseen-share", "nan"], ["--unseen-share nan"]),
        (["--unseen-share", "0.99"], ["--unseen-share 0.99 leaves 95 unseen and 1 training"]),
        (["--unseen-seed", "-2"], ["--unseen-seed -2 is negative"]),
        (["--unseen-share", "0", "--unseen-seed", "3"], ["--unseen-seed has nothing to split"]),
    ],
)
def test_train_refuses_a_bad_split_before_loading(tiny_dirs, tmp_path, capsys, extra, needles):
    out = tmp_path / "trained"
    err = _refused(capsys, _train(tiny_dirs, out, *extra), *needles)
    assert "--unseen-share" in err or "--unseen-seed" in err
    assert not out.exists() and "training tiny" not in err


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--unseen-share", "0"], ["--unseen-share 0.0", "between 0 and 1", "0.25"]),
        (["--unseen-share", "1"], ["--unseen-share 1.0"]),
        (["--unseen-share", "0.005"], ["leaves 1 unseen", "between 0.06 and 0.94"]),
        (["--unseen-seed", "-1"], ["--unseen-seed -1 is negative"]),
    ],
)
def test_run_refuses_a_bad_split_with_nothing_written(tiny_dirs, tmp_path, capsys, extra, needles):
    out = tmp_path / "runs"
    _refused(capsys, _run(tiny_dirs["llama"], out, *extra), *needles)
    assert not out.exists() or not any(out.iterdir())


def test_a_natural_family_split_too_small_for_the_documents_names_the_shares():
    with pytest.raises(IclscopeError) as err:
        check_split("nl_ranking_lexical", 0.9, 0, 10)
    assert "leaves 58 unseen and 6 training documents of 64" in str(err.value)
    assert "between 0.16 and 0.84" in err.value.fix and "--docs" in err.value.fix
    assert check_split("nl_ranking_lexical", 0.16, 0, 10) is not None  # the fix's ends work
    assert check_split("nl_ranking_lexical", 0.84, 0, 10) is not None


@pytest.fixture
def blockrank_copy(tiny_dirs, tmp_path):
    """The tiny Llama's folder with a BlockRank training record, as if trained on ``ranking``
    with 0.25 of the words kept out by seed 0."""
    from circuits.block_relevance.documents import DocumentSplit

    folder = tmp_path / "blockrank"
    shutil.copytree(tiny_dirs["llama"], folder)
    record = {"task": "ranking", "layer": 1, "documents": DocumentSplit.of("ranking").record()}
    (folder / RECORD).write_text(json.dumps(record))
    return str(folder)


def test_run_refuses_a_split_for_a_blockrank_folder(blockrank_copy, tmp_path, capsys):
    """Its record fixes the unseen documents; another split would call seen documents
    unseen."""
    out = tmp_path / "runs"
    for extra in (["--unseen-share", "0.5"], ["--unseen-seed", "1"]):
        err = _refused(capsys, _run(blockrank_copy, out, *extra), "trained with BlockRank")
        assert "drop --unseen-share and --unseen-seed" in err
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(IclscopeError, match="training record fixes"):
        BlockRelevance(split_seed=2).check(blockrank_copy, "ranking")
    BlockRelevance().check(blockrank_copy, "ranking")  # the record's own split is fine


def test_the_chosen_split_reaches_the_record_and_the_run(tiny_dirs, tmp_path, capsys):
    from circuits.block_relevance.documents import DocumentSplit
    from interp.runs import load_run

    out = tmp_path / "trained"
    args = _train(tiny_dirs, out, "--unseen-share", "0.4", "--unseen-seed", "3")
    assert main([*args, "--steps", "1", "--batch", "2"]) == 0, capsys.readouterr().err
    documents = json.loads((out / RECORD).read_text())["documents"]
    split = DocumentSplit.of("ranking", 3, 0.4)
    assert documents["seed"] == 3 and documents["unseen_share"] == 0.4
    assert documents["unseen_keys"] == list(split.unseen)
    assert split.unseen != DocumentSplit.of("ranking").unseen  # not the default split

    runs = tmp_path / "runs"
    assert main(_run(tiny_dirs["llama"], runs, "--unseen-share", "0.4", "--unseen-seed", "5")) == 0
    (path,) = runs.glob("block-relevance-*")
    run = load_run(path)
    assert run.summary["documents"]["seed"] == 5
    assert run.summary["documents"]["unseen_share"] == 0.4
    assert run.summary["documents"]["unseen"] == len(DocumentSplit.of("ranking", 5, 0.4).unseen)
    assert run.manifest["params"]["unseen_share"] == 0.4


def test_train_with_share_zero_trains_on_every_document(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "trained"
    args = _train(tiny_dirs, out, "--unseen-share", "0", "--steps", "1", "--batch", "2")
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads((out / RECORD).read_text())["documents"] is None


def test_the_trainer_refuses_a_bad_split_before_adding_adapters(tiny_dirs):
    from transformers import AutoModelForCausalLM

    from circuits.block_relevance.train import BlockRankTrainer
    from interp.organism.tokenizer import build_tokenizer

    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager")
    trainer = BlockRankTrainer(layer=1, docs=5, unseen_share=1.0)
    with pytest.raises(IclscopeError, match="unseen_share 1.0"):
        trainer.train(hf, build_tokenizer(), "ranking", prepend_bos=True)
    assert trainer.status == "not started" and not hasattr(hf, "peft_config")
