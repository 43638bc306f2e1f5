"""Nearest-class-centroid classification of cached hidden states.

The summarize step of the ICL circuit claims the input is encoded *linearly* at the forerunner
token. The weakest classifier that can read a linear, cluster-shaped code is the nearest class
centroid, so its accuracy is the paper's measure: if plain Euclidean distance to a class mean
already separates the classes, the representation has done the work, not the probe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float
from numpy.typing import ArrayLike


def as_matrix(X: ArrayLike) -> Float[np.ndarray, "n d"]:
    """A float64 ``(n, d)`` array from a tensor or array (torch tensors are detached first)."""
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    arr = np.asarray(X, dtype=np.float64)
    return arr.reshape(len(arr), -1)


def centroid_accuracy(
    train_X: ArrayLike,
    train_y: Sequence | ArrayLike,
    test_X: ArrayLike,
    test_y: Sequence | ArrayLike,
) -> float:
    """Test accuracy of predicting ``argmin_c ||x - mean(train_X[train_y == c])||``.

    A test label never seen in training counts as wrong: the classifier cannot name it, and
    silently dropping such rows would flatter small calibration sets.
    """
    Xtr, Xte = as_matrix(train_X), as_matrix(test_X)
    ytr, yte = np.asarray(train_y), np.asarray(test_y)
    if len(Xte) == 0:
        return float("nan")
    classes = np.unique(ytr)
    centroids = np.stack([Xtr[ytr == c].mean(0) for c in classes])
    # squared distances via the expansion: one matrix product instead of a (n, c, d) tensor
    d2 = (Xte**2).sum(1, keepdims=True) - 2 * Xte @ centroids.T + (centroids**2).sum(1)
    pred = classes[d2.argmin(1)]
    return float((pred == yte).mean())
