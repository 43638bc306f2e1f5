"""Task vectors on a task file: its own splits decide what is held out, what makes the
demonstrations and embeddings, and what chooses the layer."""

from __future__ import annotations

import json

from circuits.task_vectors.data import TaskSplit, resolve_tasks
from interp.organism import language as lang
from interp.tasks.files.resolve import resolve_task_argument


def test_a_task_file_keeps_its_splits(tmp_path):
    words = list(lang.CLASS_WORDS["animal"] + lang.CLASS_WORDS["food"])
    pairs = [{"input": w, "output": w.upper()} for w in words]
    folder = tmp_path / "shout"
    folder.mkdir()
    for name, rows in (("train", pairs[:30]), ("valid", pairs[30:38]), ("test", pairs[38:])):
        (folder / f"{name}.json").write_text(json.dumps(rows))
    (name,) = resolve_tasks(resolve_task_argument(str(folder)))
    split = TaskSplit.make(name, n_test=6, seed=0, min_train=10)
    as_pairs = {split_name: [(r["input"], r["output"]) for r in rows] for split_name, rows in
                (("train", pairs[:30]), ("valid", pairs[30:38]), ("test", pairs[38:]))}  # fmt: skip
    assert len(split.test) == 6 and set(split.test) <= set(as_pairs["test"])
    assert split.train == as_pairs["train"] and split.dev == as_pairs["valid"]
    assert not {x for x, _ in split.test} & {x for x, _ in split.train + split.dev}
