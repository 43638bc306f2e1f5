"""A trained copy of a model, written as a folder that ``load_model(folder)`` loads: the weights
and tokenizer Hugging Face's way, with a source record naming the base model's folder (whose
prompts, and so whose ``prepend_bos``, it keeps)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from interp.models.gguf_cache import CONVERTED_MARKER, prepend_bos


def write_model_folder(model, tokenizer, out: Path, name: str, base_folder: str | Path) -> None:
    """Save ``model`` (plain, adapters already merged) and ``tokenizer`` into ``out``.

    The files are written next to ``out`` first and moved in one by one, each move atomic, so
    a folder never holds half a file; the caller writes its own record last (a folder with a
    record is whole) and defers stops around both (:func:`~interp.stops.deferred_stops`)."""
    out.mkdir(parents=True, exist_ok=True)
    model.config.attn_implementation = None  # the loader picks its own attention
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        source = {
            "name": name,
            "base_folder": str(base_folder),
            "dtype": "float32",
            "prepend_bos": prepend_bos(base_folder),
        }
        (tmp / CONVERTED_MARKER).write_text(json.dumps(source, indent=1))
        for path in sorted(tmp.rglob("*")):
            target = out / path.relative_to(tmp)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            else:
                os.replace(path, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
