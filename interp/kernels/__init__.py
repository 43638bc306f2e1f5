"""Fused per-hook edit primitives for the iclscope engine.

Two primitives cover every intervention a hook makes:

* ``patch_or_mix`` blends source slices into an activation in place,
  ``act = (1 - alpha) * act + alpha * src`` per ``(row, position, head)``: activation patching
  (``alpha = 1``), mean / zero / resample ablation (the choice of ``src``) and soft injection
  (fractional ``alpha``) are all this one call.
* ``mask_edges`` adds a value (``-inf`` to knock out) to chosen pre-softmax attention scores,
  GQA-aware, in place.

Each has a Triton kernel (one launch, touches only edited elements, works through strides so
views are edited in place) and a torch twin with identical semantics (advanced indexing). The
public names dispatch per call with ``interp.kernels.dispatch.use_triton``, driven by the
environment variable ``ICLSCOPE_KERNELS``:

* ``auto`` (default): Triton for CUDA tensors when ``triton`` imports, the twin otherwise;
* ``triton``: force the kernel (on CPU only with ``TRITON_INTERPRET=1``; an error otherwise);
* ``torch``: force the twin.

The ``*_torch`` and ``*_triton`` variants are exported for tests and benchmarks.
"""

from interp.kernels.blend import patch_or_mix, patch_or_mix_torch, patch_or_mix_triton
from interp.kernels.dispatch import use_triton
from interp.kernels.edge_mask import mask_edges, mask_edges_torch, mask_edges_triton

__all__ = [
    "mask_edges",
    "mask_edges_torch",
    "mask_edges_triton",
    "patch_or_mix",
    "patch_or_mix_torch",
    "patch_or_mix_triton",
    "use_triton",
]
