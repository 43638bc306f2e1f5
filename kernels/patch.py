"""The old name of :mod:`kernels.blend` (the fused blend of source slices into an activation),
kept so that old imports keep working."""

from kernels.blend import patch_or_mix, patch_or_mix_torch, patch_or_mix_triton  # noqa: F401
