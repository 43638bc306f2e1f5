"""Task families: the natural-language suite, the organism language and a researcher's own
files, one interface (:class:`~interp.tasks.family.TaskFamily`).

``from_file`` and ``from_pairs`` are imported when first used, so that importing a light
submodule of this package does not import torch.
"""

from __future__ import annotations

__all__ = ["TaskFileOptions", "from_file", "from_pairs"]


def __getattr__(name: str):
    if name in __all__:
        from interp.tasks import files

        return getattr(files, name)
    raise AttributeError(f"module 'interp.tasks' has no attribute {name!r}")
