"""The files of a model folder, checked before anything loads them.

Transformers meets a damaged file deep inside its loaders and answers with whatever that
loader raises: a ``JSONDecodeError`` from the tokenizer, a ``SafetensorError: header too
small`` from the weights, or nothing at all (a corrupt ``generation_config.json`` is skipped
silently). A short pass over the folder first turns every missing, empty, truncated or corrupt
file into one :class:`~interp.errors.IclscopeError` that names the file and says how to get a
good copy back. It reads the JSON files and the safetensors headers only, never the weights,
so it costs milliseconds next to the load it protects.

It knows nothing of the registry or the backends (they import it); how to repair a registered
model's folder is :func:`interp.models.registry.repair_hint`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from interp.errors import IclscopeError, read_error

JSON_FILES = (
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "iclscope_source.json",
)
"""JSON files a model folder may hold; each is checked when present."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
"""A folder needs one of these for its tokenizer."""
_MAX_HEADER = 100_000_000  # the safetensors format's own limit


def read_json(path: Path, fix: str) -> Any:
    """A JSON file's value, or an error naming the file: missing, empty or not valid JSON."""
    try:
        text = path.read_bytes()
    except OSError as err:
        raise read_error(path, err, fix) from None
    if not text.strip():
        raise IclscopeError(f"{path} is empty", fix=fix)
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IclscopeError(
            f"{path} is truncated or corrupt: not valid JSON ({err})", fix=fix
        ) from None


def safetensors_header(path: Path, fix: str) -> dict[str, Any]:
    """The header of a safetensors file, after checking that the file is as long as the header
    says: a truncated copy fails here, not halfway through loading."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            raw = f.read(n) if 0 < n <= _MAX_HEADER else b""
    except OSError as err:
        raise read_error(path, err, fix) from None
    if size == 0:
        raise IclscopeError(f"{path} is empty", fix=fix)
    if n <= 0 or n > _MAX_HEADER or len(raw) < n:
        raise IclscopeError(f"{path} is truncated or corrupt: its header is cut short", fix=fix)
    try:
        header = json.loads(raw)
        end = max(
            (int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0
        )
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise IclscopeError(
            f"{path} is corrupt: its header is not a safetensors header", fix=fix
        ) from None
    if 8 + n + end != size:
        state = "truncated" if size < 8 + n + end else "corrupt"
        raise IclscopeError(
            f"{path} is {state}: {size} bytes where its header describes {8 + n + end}", fix=fix
        )
    return header


def check_model_folder(folder: str | Path, fix: str) -> None:
    """Refuse a model folder with a missing, empty, truncated or corrupt file (see the module
    docstring); ``fix`` says how to get a good copy of this folder."""
    folder = Path(folder)
    _json_object(folder / "config.json", fix, key="model_type")
    _check_weights(folder, fix)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise IclscopeError(
            f"{folder / 'tokenizer.json'} is missing: the folder has no tokenizer", fix=fix
        )
    for name in ("tokenizer.json", *JSON_FILES):
        if (folder / name).exists():
            _json_object(folder / name, fix, key="model" if name == "tokenizer.json" else None)
    if (folder / "tokenizer.model").exists() and (folder / "tokenizer.model").stat().st_size == 0:
        raise IclscopeError(f"{folder / 'tokenizer.model'} is empty", fix=fix)


def _json_object(path: Path, fix: str, key: str | None = None) -> dict:
    """A JSON file that must hold an object (with ``key``, when given)."""
    value = read_json(path, fix)
    if not isinstance(value, dict) or (key is not None and key not in value):
        what = f"no {key!r}" if isinstance(value, dict) else "not a JSON object"
        raise IclscopeError(f"{path} is corrupt: {what}", fix=fix)
    return value


def _check_weights(folder: Path, fix: str) -> None:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set((read_json(index, fix).get("weight_map") or {}).values()))
        files = [folder / s for s in shards]
    else:
        files = sorted(folder.glob("*.safetensors"))
    if files:
        for path in files:
            safetensors_header(path, fix)
        return
    legacy = folder / "pytorch_model.bin"
    if legacy.is_file():
        if legacy.stat().st_size == 0:
            raise IclscopeError(f"{legacy} is empty", fix=fix)
        return
    raise IclscopeError(
        f"{folder / 'model.safetensors'} is missing: the folder has no weights", fix=fix
    )
