"""A BlockRank folder: the adapted model saved as a plain Hugging Face folder that
``--model DIR`` loads, with its training record ``blockrank.json``, and what block relevance
reads back from that record (the document split it trained on)."""

from __future__ import annotations

import json
from pathlib import Path

from circuits.block_relevance.documents import DocumentSplit, document_pool
from interp.io import atomic_write_text
from interp.models.trained import write_model_folder
from interp.stops import deferred_stops

RECORD = "blockrank.json"
"""The training record's file name inside a BlockRank folder."""


def training_split(model_path: str, family: str) -> tuple[DocumentSplit | None, str] | None:
    """For a BlockRank folder trained on a family with ``family``'s document pool: the split
    its record names (``training record``), or, for a folder that kept no document out, the
    default split marked ``trained on the whole pool`` (its unseen documents were seen in
    training). ``None`` for any other model."""
    path = Path(model_path) / RECORD
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    pool = document_pool(family)
    if pool is None or document_pool(record.get("task", "")) != pool:
        return None
    documents = record.get("documents")
    if documents is None:
        return DocumentSplit.of(family), "trained on the whole pool"
    return DocumentSplit.from_record(family, documents), "training record"


def plain_model(model):
    """``model`` with any peft adapters merged into its weights and taken out."""
    from peft import PeftModel

    from circuits.block_relevance.adapters import merge_lora

    return merge_lora(model) if isinstance(model, PeftModel) else model


def save_folder(model, tokenizer, out: Path, base_folder: str, record: dict) -> Path:
    """The adapted model (adapters merged: a :class:`~peft.PeftModel` is merged here) as a
    Hugging Face folder that ``load_model(out)`` loads.

    The folder is written next to ``out`` first and its files moved in one by one, each move
    atomic, the record ``blockrank.json`` last: a folder with a record is whole. A stop that
    comes meanwhile waits for the end (:func:`~interp.stops.deferred_stops`). With no step
    done (interrupted at once) only the record is written: there is nothing to keep."""
    out.mkdir(parents=True, exist_ok=True)
    with deferred_stops():
        if record["steps_done"]:
            name = f"blockrank:{record['base_model']}"
            write_model_folder(plain_model(model), tokenizer, out, name, base_folder)
        atomic_write_text(out / RECORD, json.dumps(record, indent=1))
    return out
