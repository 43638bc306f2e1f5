"""Loading a model: ``load_model(spec, backend)`` returns a :class:`HookedModel`.

* ``transformer_lens``: a TransformerLens 4 ``TransformerBridge`` (the full vocabulary,
  ``start_at_layer``, gradients; see :mod:`interp.models.transformer_lens_backend`);
* ``nnsight``: an nnsight ``TransformersModel`` over the unconverted Hugging Face model, with
  the hook names mapped onto module inputs and outputs (see :mod:`interp.models.nnsight_backend`).

``spec`` is a registered name (``smollm2``, ``gemma3-270m``, ``organism``, ...; see
:mod:`interp.models.registry`), a local Hugging Face folder, or a hub name (only where the hub is
reachable). This is the top layer and the only module that imports both backends
(interface < backends < loader), so neither backend nor the registry depends on the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from interp.errors import IclscopeError
from interp.models.interface import Backend, HookedModel, ModelConfig
from interp.models.transformer_lens_backend import TransformerLensModel


def resolve_spec(spec: str) -> tuple[str, bool]:
    """``(path_or_name, is_local)`` for a model spec, or a clear error.

    A registered name (``iclscope models``) resolves to its folder, converting a GGUF model on
    first use; otherwise ``spec`` must be a local Hugging Face folder, or a hub name where the
    hub is reachable. Offline, anything else is refused at once with the nearest names.
    """
    from interp.models.files import check_model_folder
    from interp.models.registry import MODELS, get_entry, repair_hint, suggest

    if spec in MODELS:
        folder = get_entry(spec).materialize()
        check_model_folder(folder, fix=repair_hint(spec, folder))  # damaged files, named
        return str(folder), True
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise IclscopeError(
                f"{spec} is a folder but not a Hugging Face model (no config.json)",
                fix="point at the folder holding config.json, the weights and the tokenizer",
            )
        check_model_folder(path, fix=repair_hint(spec, path))
        return str(path), True
    names = ", ".join(MODELS)
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec and spec.count("/") > 1
    if looks_like_path or path.exists() or not spec.strip():
        raise IclscopeError(
            f"unknown model path {spec!r}: no such folder",
            fix=f"pass a registered model ({names}) or an existing local Hugging Face folder",
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    typo = "/" not in spec and suggest(spec, MODELS)  # a near-miss of a registered name
    if offline or typo:
        raise IclscopeError(
            f"unknown model {spec!r}: not a registered name, not a local folder"
            + (", and HF_HUB_OFFLINE is set so the hub is not tried" if offline else ""),
            fix=f"{suggest(spec, MODELS)}use one of {names} (see `iclscope models`) or a "
            "local Hugging Face folder",
        )
    return spec, False


def load_model(
    spec: str = "organism",
    backend: Backend = "transformer_lens",
    device: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> HookedModel:
    """Load a causal LM as a :class:`HookedModel`.

    ``spec``: a registered name (``iclscope models``), a local Hugging Face folder, or a hub
    name (online only).
    ``backend``: ``"transformer_lens"`` or ``"nnsight"``; both expose the same hook names.
    """
    from transformers import AutoConfig, AutoTokenizer

    where, _ = resolve_spec(spec)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        hf_config = AutoConfig.from_pretrained(where)
        tokenizer = AutoTokenizer.from_pretrained(where)
    except OSError as err:
        raise IclscopeError(
            f"could not load model {spec!r}: {err}".split("\n")[0],
            fix="check the name, your network, or pass a local Hugging Face folder",
        ) from err
    cfg = ModelConfig.from_hf(spec, hf_config)
    if backend == "transformer_lens":
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(
            where, device=device, dtype=dtype, tokenizer=tokenizer
        )
        return TransformerLensModel(bridge, tokenizer, cfg, where)
    if backend == "nnsight":
        from interp.models.nnsight_backend import NNsightModel

        return NNsightModel.load(where, tokenizer, cfg, device, dtype)
    raise IclscopeError(f"unknown backend {backend!r}", fix="use 'transformer_lens' or 'nnsight'")
