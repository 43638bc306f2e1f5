"""Task files: every format and column alias, kind inference, overrides, templates and splits.

Files are written here in the organism's words, so prompts build with its word-level
tokenizer and the counts below can be checked by hand.
"""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from interp.errors import IclscopeError
from interp.organism import language as lang
from interp.prompts import PromptBuilder, token_roles
from interp.tasks import from_file, from_pairs
from interp.tasks.files.columns import parse_columns

ANIMALS, COLORS = lang.CLASS_WORDS["animal"], lang.CLASS_WORDS["color"]
PAIRS = [(a, c) for a, c in zip(ANIMALS, COLORS)] * 2  # 48 function rows, 24 distinct answers
SENTIMENT = [(w, "animal") for w in ANIMALS] + [(w, "color") for w in COLORS]


def write(path, rows: list[dict]):
    """``rows`` in the format of ``path``'s extension."""
    table = pd.DataFrame(rows)
    if path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        table.to_csv(path, sep="\t", index=False)
    else:
        table.to_parquet(path)
    return path


def records(pairs, x="input", y="output") -> list[dict]:
    return [{x: a, y: b} for a, b in pairs]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".tsv", ".parquet"])
def test_every_file_format_reads_the_same_rows(tmp_path, suffix):
    family = from_file(write(tmp_path / f"colors{suffix}", records(PAIRS)))
    assert family.name == "colors" and family.source == "file" and family.kind == "function"
    origin = family.origin
    assert origin.format == suffix[1:] and origin.quality["rows"] == len(PAIRS)
    assert sum(origin.splits.values()) == len(PAIRS) and origin.split_made
    assert len(origin.sha256) == 64 and origin.size == (tmp_path / f"colors{suffix}").stat().st_size
    episode = family.sample(random.Random(0), 3)
    assert (episode.query, episode.answer) in PAIRS and len(episode.demos) == 3


@pytest.mark.parametrize(
    ("x", "y"),
    [("input", "output"), ("text", "label"), ("sentence", "label"), ("question", "answer")],
)
def test_every_column_alias_is_found(tmp_path, x, y):
    family = from_file(write(tmp_path / "t.jsonl", records(SENTIMENT, x, y)))
    assert family.origin.columns == {"x": x, "y": y}
    assert family.kind == "classification" and family.labels == ("animal", "color")


def test_column_override_and_unknown_columns(tmp_path):
    path = write(tmp_path / "t.csv", records(PAIRS, "review", "stars"))
    with pytest.raises(IclscopeError, match=r"its columns: review, stars") as err:
        from_file(path)
    assert "--columns x=" in err.value.fix
    family = from_file(path, columns=parse_columns("x=review,y=stars"))
    assert family.origin.columns == {"x": "review", "y": "stars"}
    with pytest.raises(IclscopeError, match=r"no column 'rating'"):
        from_file(path, columns={"x": "review", "y": "rating"})
    with pytest.raises(IclscopeError, match="ROLE=COLUMN"):
        parse_columns("x:review")


def test_kind_is_inferred_and_can_be_overridden(tmp_path):
    path = write(tmp_path / "s.json", records(SENTIMENT))
    assert from_file(path).kind == "classification"  # 2 answers, 24 rows each
    assert from_file(write(tmp_path / "f.json", records(PAIRS))).kind == "function"  # 24 answers
    forced = from_file(path, kind="function")
    assert (
        forced.kind == "function" and forced.labels == () and forced.origin.kind_inferred is False
    )
    with pytest.raises(IclscopeError, match="cannot be read as a ranking task"):
        from_file(path, kind="ranking")


def ranking_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        docs = [{"doc_id": f"d{i}-{j}", "title": ANIMALS[j], "text": COLORS[j]} for j in range(6)]
        rows.append({"query": COLORS[i % 6], "documents": docs, "answer_ids": [f"d{i}-{i % 6}"]})
    return rows


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_ranking_rows_in_blockrank_layout(tmp_path, suffix):
    family = from_file(write(tmp_path / f"rank{suffix}", ranking_rows(30)))
    assert family.kind == "ranking" and family.default_k == 6
    episode = family.sample(random.Random(3), 4)
    assert len(episode.docs) == 4 and episode.answer == episode.docs[episode.meta["gold"]][0]
    gold_text = episode.docs[episode.meta["gold"]][1]
    assert gold_text.endswith(episode.query)  # the relevant document holds the query's color
    assert episode.meta["doc_ids"][episode.meta["gold"]].endswith(f"-{COLORS.index(episode.query)}")
    strings = [
        {
            "query": r["query"],
            "documents": [f"{d['title']} {d['text']}" for d in r["documents"]],
            "answer_ids": [r["answer_ids"][0].split("-")[1]],
        }
        for r in ranking_rows(30)
    ]
    plain = from_file(write(tmp_path / f"strings{suffix}", strings))
    assert plain.sample(random.Random(0), 6).docs[0][1].count(" ") == 1


def test_split_folders_and_saved_datasets(tmp_path):
    folder = tmp_path / "split_task"
    folder.mkdir()
    train, test = PAIRS[:30], PAIRS[30:]
    write(folder / "train.csv", records(train))
    write(folder / "test.csv", records(test))
    family = from_file(folder)
    assert family.origin.splits == {"train": 30, "test": len(test), "valid": 0}
    assert not family.origin.split_made and family.origin.format == "folder"
    rng = random.Random(0)
    for _ in range(50):  # demonstrations from train, queries from test
        ep = family.sample(rng, 4)
        assert (ep.query, ep.answer) in test and all(d in train for d in ep.demos)

    import datasets

    feature = datasets.ClassLabel(names=["animal", "color"])
    ds = datasets.Dataset.from_dict(
        {"text": [x for x, _ in SENTIMENT], "label": [feature.str2int(y) for _, y in SENTIMENT]},
        features=datasets.Features({"text": datasets.Value("string"), "label": feature}),
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    saved = from_file(tmp_path / "saved")
    assert saved.labels == ("animal", "color") and saved.origin.format == "saved dataset"
    parts = ds.train_test_split(test_size=0.25, seed=0)
    datasets.DatasetDict(
        {"train": parts["train"], "validation": parts["test"], "test": parts["test"]}
    ).save_to_disk(str(tmp_path / "dict"))
    split = from_file(tmp_path / "dict")
    assert split.origin.splits == {"train": 36, "valid": 12, "test": 12}


def test_seeded_split_is_reproducible_and_never_leaks_the_query(tmp_path):
    path = write(tmp_path / "f.json", records(PAIRS))
    a, b = from_file(path), from_file(path)
    assert a.sample.splits == b.sample.splits
    assert from_file(path, split_seed=1).sample.splits != a.sample.splits
    assert a.origin.splits == {"train": 33, "valid": 5, "test": 10}  # 70/10/20 of 48, rounded
    rng = random.Random(0)
    for _ in range(200):  # PAIRS holds every row twice: the query's twin must stay out
        ep = a.sample(rng, 8)
        assert ep.query not in [x for x, _ in ep.demos]
    valid = a.on_split("valid")
    assert all(
        (ep.query, ep.answer) in a.sample.splits["valid"]
        for ep in (valid.sample(rng, 2) for _ in range(20))
    )


def test_data_quality_counts(tmp_path):
    rows = records(PAIRS[:10]) + [{"input": "cat", "output": "blue"}, {"input": "", "output": "x"}]
    family = from_file(write(tmp_path / "q.json", rows))
    quality = family.origin.quality
    assert quality == {"rows": 12, "empty": 1, "duplicates": 0, "conflicting_inputs": 1}
    dup = from_file(write(tmp_path / "d.json", records(PAIRS)))  # every row twice
    assert dup.origin.quality["duplicates"] == 24


def test_templates_define_the_roles(organism_tokenizer, tmp_path):
    family = from_file(write(tmp_path / "s.csv", records(SENTIMENT)))
    assert family.template.demo == "sentence: {x} sentiment: {y}\n"
    builder = PromptBuilder(organism_tokenizer)
    ep = family.sample(random.Random(0), 2)
    batch = builder.build(family.template, [ep])
    ann, tokens = batch.annotations[0], batch.tokens[0].tolist()
    words = organism_tokenizer.convert_ids_to_tokens(tokens)
    assert [words[s] for s in ann.s] == [":", ":"] and words[ann.s_q] == ":"  # forerunners
    assert [words[s - 1] for s in ann.s] == ["sentiment", "sentiment"]
    assert words[ann.y[0]] == ep.demos[0][1]
    fv = from_file(tmp_path / "s.csv", template="Q: {x}\\nA: {y}", separator="\\n\\n")
    assert fv.template.demo == "Q: {x}\nA: {y}\n\n"
    roles = token_roles(builder.build(fv.template, [ep]).annotations[0], len(tokens) + 8)
    assert roles.count("s_q") == 1 and "x_q" in roles and "y_1" in roles
    prefixed = from_file(tmp_path / "s.csv", label_prefix="topic:")
    assert prefixed.template.demo == "sentence: {x} topic: {y}\n"
    with pytest.raises(IclscopeError, match=r"puts \{y\} before \{x\}"):
        from_file(tmp_path / "s.csv", template="{y} is the class of {x}")
    with pytest.raises(IclscopeError, match="no label prefix"):
        from_file(tmp_path / "s.csv", template="{x} {y}")


def test_from_pairs_is_the_same_family_type(organism_tokenizer):
    family = from_pairs(PAIRS, name="animal_color")
    assert family.name == "animal_color" and family.kind == "function"
    batch = PromptBuilder(organism_tokenizer).build(
        family.template, [family.sample(random.Random(0), 2)]
    )
    assert len(batch.annotations[0].y) == 2
    classes = from_pairs([{"text": x, "label": y} for x, y in SENTIMENT], name="cls")
    assert classes.kind == "classification"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.json", b"", "is empty"),
        ("object.json", b'{"input": "a"}', "holds a JSON dict, not a list"),
        ("numbers.json", b"[1, 2]", "item 0 is a JSON int"),
        ("broken.json", b'[{"input": "a",\n "output": }]', "not valid JSON at line 2"),
        ("broken.jsonl", b'{"input": "a", "output": "b"}\n{"input": \n', "at line 2"),
        ("nothing.json", b"[]", "holds no rows"),
        ("header.csv", b"input,output\n", "has a header but no rows"),
        ("bad.csv", b'input,output\n"a,b\n', "cannot be read as CSV"),
        ("parquet.json", b"PAR1\x00\x01\x02", "is a parquet file, not .json text"),
        ("binary.csv", b"\x00\x01\x02\x03", "is binary data, not .csv text"),
        ("latin.tsv", "input\toutput\ncafé\tx\n".encode("latin-1"), "is not UTF-8 text"),
        ("fake.parquet", b"input,output\na,b\n", "is not a parquet file"),
        ("notes.txt", b"a b", "extension '.txt'"),
    ],
)
def test_every_bad_file_is_named_with_its_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IclscopeError, match=message) as err:
        from_file(path)
    assert str(path.name) in err.value.problem and err.value.fix


def test_missing_files_folders_and_too_few_rows(tmp_path):
    with pytest.raises(IclscopeError, match="does not exist"):
        from_file(tmp_path / "nope.json")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(IclscopeError, match="neither train/valid/test files"):
        from_file(tmp_path / "empty_dir")
    small = from_file(write(tmp_path / "small.json", records(PAIRS[:6])))
    with pytest.raises(IclscopeError, match=r"demonstration rows for this query, 8 are asked"):
        small.sample(random.Random(0), 8)
