"""iclscope probes: scikit-learn probes and representation geometry on cached activations.

Everything here takes plain arrays or tensors of states and labels, so the same probe reads the
output of any analysis (see the ICL circuit page of the docs, ``docs/analyses/icl-circuit.md``).
"""

from probes.alignment import cosine_kernel, kernel_alignment, random_reference, reference_encoding
from probes.centroid import as_matrix, centroid_accuracy
from probes.linear import logistic_probe_accuracy

__all__ = [
    "as_matrix",
    "centroid_accuracy",
    "cosine_kernel",
    "kernel_alignment",
    "logistic_probe_accuracy",
    "random_reference",
    "reference_encoding",
]
