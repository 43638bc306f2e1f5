"""Choose between a Triton kernel and its torch twin for one tensor.

Every fused hook primitive in this package has two implementations with identical semantics: a
Triton kernel (one launch, touches only the edited elements) and a torch "twin" built from
advanced indexing (the reference, and the only option on CPU). ``ICLSCOPE_KERNELS`` picks:

* ``auto`` (default): Triton when the tensor lives on CUDA and ``triton`` imports, else torch.
  CPU tensors always get the twin here, even under ``TRITON_INTERPRET=1``, because the
  interpreter is orders of magnitude slower than advanced indexing.
* ``triton``: always Triton. On CPU this is only possible through the interpreter
  (``TRITON_INTERPRET=1``), so anything else is an error rather than a silent fallback: a user
  who forces a backend wants to know when it cannot run.
* ``torch``: always the twin (useful to bisect a suspected kernel bug).

Triton is imported lazily, so ``import interp.kernels`` works (and picks torch) on machines
without it.
"""

from __future__ import annotations

import importlib
import os

import torch
from torch import Tensor

from interp.errors import IclscopeError

ENV_VAR = "ICLSCOPE_KERNELS"
MODES = ("auto", "triton", "torch")
_TRUE = ("1", "true", "yes", "on")


def kernel_mode() -> str:
    """The requested backend, read on every call so tests and users can flip it at runtime."""
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise IclscopeError(
            f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} is not a known kernel backend",
            f"set {ENV_VAR} to one of {', '.join(MODES)} (or unset it for auto)",
        )
    return mode


def triton_available() -> bool:
    """Whether ``triton`` imports. Not cached: once imported the lookup is a dict hit, and not
    caching lets tests simulate its absence by hiding it from ``sys.modules``."""
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def interpreter_enabled() -> bool:
    """Whether Triton will run kernels through its CPU interpreter (``TRITON_INTERPRET``)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUE


def use_triton(t: Tensor) -> bool:
    """True when the Triton kernel should edit ``t``, False for the torch twin.

    Raises ``IclscopeError`` when ``ICLSCOPE_KERNELS=triton`` is forced but cannot be honoured
    (Triton missing, or a non-CUDA tensor without the interpreter).
    """
    mode = kernel_mode()
    if mode == "torch":
        return False
    if mode == "auto":
        return t.is_cuda and triton_available()
    if not triton_available():
        raise IclscopeError(
            f"{ENV_VAR}=triton but the triton package cannot be imported",
            f"install triton (Linux x86_64 only) or set {ENV_VAR}=auto/torch",
        )
    if t.is_cuda:
        return True
    if t.device.type == "cpu" and interpreter_enabled():
        return True
    raise IclscopeError(
        f"{ENV_VAR}=triton but the tensor is on {t.device}, and Triton kernels run on CPU only "
        "through the interpreter",
        "move the tensor to a CUDA device, set TRITON_INTERPRET=1 before triton is imported "
        f"(slow; for tests), or set {ENV_VAR}=auto/torch",
    )


def as_index(name: str, t: Tensor, n: int | None, device) -> Tensor:
    """Check one edit-index vector (1-D, integer, on ``device``, length ``n``) and return it as
    contiguous int64: kernels read it with plain ``ptr + e`` loads, and int64 keeps the stride
    products in 64-bit so large activations cannot overflow."""
    if not isinstance(t, Tensor) or t.dim() != 1:
        raise IclscopeError(f"{name} must be a 1-D tensor", f"pass {name} with shape (n_edits,)")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise IclscopeError(f"{name} has dtype {t.dtype}, not an integer dtype", "use torch.int64")
    if n is not None and t.shape[0] != n:
        raise IclscopeError(
            f"{name} has {t.shape[0]} entries but there are {n} edits",
            "give every per-edit vector the same length",
        )
    if t.device != torch.device(device):
        raise IclscopeError(
            f"{name} is on {t.device}, the edited tensor on {device}", f"move {name} to {device}"
        )
    return t.to(torch.int64).contiguous()


def check_ranges(checks: list[tuple[str, Tensor, int, int, str]]) -> dict[str, tuple[int, int]]:
    """Raise if any ``(name, index, lo, hi, what)`` has a value outside ``[lo, hi)``; return
    each non-empty index's ``(min, max)`` so callers can plan the launch without another sync.

    All mins and maxes travel to the host in one transfer, so on CUDA validation costs one
    synchronisation instead of two per index vector.
    """
    checks = [c for c in checks if c[1].numel() > 0]
    if not checks:
        return {}
    bounds = torch.stack([torch.stack(torch.aminmax(c[1])) for c in checks]).tolist()
    for (name, _, lo, hi, what), (vmin, vmax) in zip(checks, bounds):
        bad = vmin if vmin < lo else vmax if vmax >= hi else None
        if bad is not None:
            raise IclscopeError(
                f"{name} contains {bad}, out of range for {what} (valid {lo}..{hi - 1})",
                f"keep every {name} entry within {lo}..{hi - 1}",
            )
    return {c[0]: (int(b[0]), int(b[1])) for c, b in zip(checks, bounds)}
