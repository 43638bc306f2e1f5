"""Reading a task file or folder into tables, one per split, whatever its format.

The formats a researcher already has on disk: a ``.json`` list of objects (the Function
Vectors files), ``.jsonl``, ``.csv``, ``.tsv``, ``.parquet``, a folder of ``train`` /
``valid`` / ``test`` files in any of those formats (the soft-injection layout), and a folder
written by ``datasets.Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``. pandas and
``datasets`` do the parsing; this module only decides which reader to call and turns each way a
file can be wrong into one :class:`~interp.errors.IclscopeError` that names the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from interp.errors import IclscopeError, read_error

TABLE_FORMATS = (".json", ".jsonl", ".csv", ".tsv", ".parquet")
SPLIT_ALIASES = {
    "train": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
}
"""File stems and ``DatasetDict`` keys read as splits (``validation`` and ``dev`` are ``valid``)."""
_MAGIC = {b"PAR1": "a parquet file", b"PK\x03\x04": "a zip archive", b"\x1f\x8b": "gzip data"}


@dataclass
class RawTask:
    """What was read: one table (``pandas.DataFrame``) per split (``all`` when the source has
    none), the source's size and SHA-256, and the class names of integer label columns."""

    path: Path
    format: str
    splits: dict
    size: int
    sha256: str
    class_names: dict[str, list[str]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        first = next(iter(self.splits.values()))
        return [str(c) for c in first.columns]

    @property
    def rows(self) -> int:
        return sum(len(t) for t in self.splits.values())


def read_task(path: str | Path) -> RawTask:
    """Read ``path`` (a file or a folder) into a :class:`RawTask`, or refuse it with the reason."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise IclscopeError(
            f"task file {path} does not exist",
            fix="check the path, or name a built-in family (see `iclscope tasks`)",
        )
    if path.is_dir():
        return _read_folder(path)
    table = _read_table(path)
    return RawTask(path, path.suffix.lstrip("."), {"all": table}, *_fingerprint([path]))


def _fingerprint(files: list[Path]) -> tuple[int, str]:
    """Total size and one SHA-256 over the files' names and bytes (so a folder has one too)."""
    digest, size = hashlib.sha256(), 0
    for file in sorted(files):
        try:
            data = file.read_bytes()
        except OSError as err:
            raise read_error(file, err) from None
        if len(files) > 1:
            digest.update(file.name.encode() + b"\0")
        digest.update(data)
        size += len(data)
    return size, digest.hexdigest()


def _read_folder(folder: Path) -> RawTask:
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        return _read_saved_dataset(folder)
    files = {}
    for file in sorted(folder.iterdir()):
        split = SPLIT_ALIASES.get(file.stem.lower())
        if split is not None and file.suffix.lower() in TABLE_FORMATS:
            if split in files:
                raise IclscopeError(
                    f"{folder} has two {split} files ({files[split].name}, {file.name})",
                    fix="keep one file per split",
                )
            files[split] = file
    if not files:
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:12]) or "nothing"
        raise IclscopeError(
            f"{folder} holds neither train/valid/test files nor a saved dataset (found: {found})",
            fix="name the files train, valid and test with one of the extensions "
            f"{', '.join(TABLE_FORMATS)}, or pass a single file",
        )
    splits = {split: _read_table(file) for split, file in files.items()}
    columns = {split: sorted(map(str, t.columns)) for split, t in splits.items()}
    if len({tuple(c) for c in columns.values()}) > 1:
        shown = "; ".join(f"{s}: {', '.join(c)}" for s, c in columns.items())
        raise IclscopeError(
            f"the split files in {folder} have different columns ({shown})",
            fix="give every split file the same columns",
        )
    return RawTask(folder, "folder", splits, *_fingerprint(list(files.values())))


def _read_saved_dataset(folder: Path) -> RawTask:
    """A folder from ``save_to_disk``: integer ``ClassLabel`` columns keep their names."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as err:  # datasets raises several types for a damaged folder
        raise IclscopeError(
            f"{folder} looks like a saved Hugging Face dataset but cannot be loaded: {err}",
            fix="save it again with Dataset.save_to_disk or DatasetDict.save_to_disk",
        ) from None
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"all": loaded}
    splits, class_names = {}, {}
    for name, part in parts.items():
        split = SPLIT_ALIASES.get(name.lower(), name) if len(parts) > 1 else "all"
        for column, feature in part.features.items():
            if isinstance(feature, datasets.ClassLabel):
                class_names[column] = list(feature.names)
        splits[split] = part.to_pandas()
    unknown = sorted(set(splits) - {"train", "valid", "test", "all"})
    if unknown:
        raise IclscopeError(
            f"{folder} has splits {', '.join(unknown)}, which are not train, valid or test",
            fix="rename the splits (a DatasetDict with train, validation and test keys)",
        )
    files = [p for p in folder.rglob("*") if p.is_file()]
    return RawTask(folder, "saved dataset", splits, *_fingerprint(files), class_names)


def _read_table(file: Path):
    """One file as a ``DataFrame``, or the reason it cannot be one."""
    import pandas as pd

    suffix = file.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise IclscopeError(
            f"{file} has the extension {suffix or '(none)'!r}, which iclscope does not read",
            fix=f"use one of {', '.join(TABLE_FORMATS)}, or a folder of train/valid/test files",
        )
    try:
        head = file.open("rb").read(8192)
    except OSError as err:
        raise read_error(file, err) from None
    if not head.strip():
        raise IclscopeError(f"{file} is empty", fix="write the task's rows into it")
    if suffix == ".parquet":
        try:
            return pd.read_parquet(file)
        except Exception as err:  # pyarrow.ArrowInvalid and friends
            raise IclscopeError(
                f"{file} is not a parquet file ({_what_it_is(head) or err})",
                fix="write it with DataFrame.to_parquet, or give it the extension of its format",
            ) from None
    text = _text(file, head)
    if suffix == ".json":
        return _records(file, _parse_json(file, text))
    if suffix == ".jsonl":
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        return _records(file, [_parse_json(file, line, n) for n, line in lines], jsonl=True)
    return _read_delimited(file, "\t" if suffix == ".tsv" else ",")


def _what_it_is(head: bytes) -> str | None:
    return next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)


def _text(file: Path, head: bytes) -> str:
    """The file as UTF-8 text; a binary file is named for what it is, not parsed."""
    kind = _what_it_is(head)
    if kind is not None or b"\0" in head:
        raise IclscopeError(
            f"{file} is {kind or 'binary data'}, not {file.suffix} text",
            fix="give the file the extension of its format (.parquet for parquet)",
        )
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise IclscopeError(
            f"{file} is not UTF-8 text (byte {err.start})",
            fix="save it as UTF-8, or give it the extension of its format",
        ) from None


def _parse_json(file: Path, text: str, line: int | None = None):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {line}" if line is not None else f"line {err.lineno}, column {err.colno}"
        raise IclscopeError(
            f"{file} is not valid JSON at {where}: {err.msg}",
            fix="fix that line (a .jsonl file holds one JSON object per line)",
        ) from None


def _records(file: Path, data, jsonl: bool = False):
    import pandas as pd

    if not isinstance(data, list):
        raise IclscopeError(
            f"{file} holds a JSON {type(data).__name__}, not a list of objects",
            fix='write a list such as [{"input": "hot", "output": "cold"}, ...]',
        )
    if not data:
        raise IclscopeError(f"{file} holds no rows", fix="write the task's rows into it")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            where = f"line {i + 1}" if jsonl else f"item {i}"
            raise IclscopeError(
                f"{file}: {where} is a JSON {type(row).__name__}, not an object",
                fix='make every row an object such as {"input": "hot", "output": "cold"}',
            )
    return pd.DataFrame.from_records(data)


def _read_delimited(file: Path, sep: str):
    import pandas as pd

    try:
        # strings as written: no NaN for "NA" or "", no 1.0 for "1"
        table = pd.read_csv(file, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise IclscopeError(f"{file} is empty", fix="write a header line and rows") from None
    except pd.errors.ParserError as err:
        raise IclscopeError(
            f"{file} cannot be read as {'TSV' if sep == chr(9) else 'CSV'}: {err}".strip(),
            fix="quote fields that hold the delimiter, and give every line the header's fields",
        ) from None
    if table.empty:
        raise IclscopeError(f"{file} has a header but no rows", fix="write the task's rows")
    return table
