"""Kernel alignment: do two representations of the same items agree on who is near whom?

Used by the summarize step (hidden states vs a reference encoding of the input text) and the
semantics-merge step (label-token states vs forerunner states). Comparing *neighbour sets*
rather than raw similarities makes the score invariant to any monotone rescaling of either
kernel, so representations of different widths and norms compare directly. The reference
encoding is pluggable; the default is TF-IDF + truncated SVD because it needs no network and no
weights, and a random encoding gives the chance level to read every score against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float
from numpy.typing import ArrayLike

from probes.centroid import as_matrix


def cosine_kernel(X: ArrayLike) -> Float[np.ndarray, "n n"]:
    """Cosine similarities between rows, with a zero diagonal (self-similarity says nothing)."""
    A = as_matrix(X)
    # a zero row has no direction; give it norm 1 so it stays at similarity 0, not NaN
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    A = A / np.where(norms > 0, norms, 1.0)
    S = A @ A.T
    np.fill_diagonal(S, 0.0)
    return S


def kernel_alignment(A: ArrayLike, B: ArrayLike, m: int = 64) -> float:
    """Mean over items of ``|topm(S_A[i]) ∩ topm(S_B[i])| / m``, ``S`` the cosine kernels.

    ``m`` is clipped to ``n - 1``. An item is excluded from its own neighbour set outright
    (not only zeroed): with a zeroed diagonal an item whose other similarities are negative
    would count itself as a neighbour in one kernel and not the other, which measures the sign
    of the kernel, not its structure. Chance level for unrelated kernels is about ``m / (n-1)``.
    """
    SA, SB = cosine_kernel(A), cosine_kernel(B)
    n = len(SA)
    if n != len(SB):
        raise ValueError(f"A has {n} items but B has {len(SB)}")
    if n < 2:
        return float("nan")
    m = max(1, min(int(m), n - 1))
    np.fill_diagonal(SA, -np.inf)
    np.fill_diagonal(SB, -np.inf)
    # argpartition gives the m largest per row without a full sort
    top_a = np.argpartition(-SA, m - 1, axis=1)[:, :m]
    top_b = np.argpartition(-SB, m - 1, axis=1)[:, :m]
    hits_a = np.zeros((n, n), dtype=bool)
    hits_b = np.zeros((n, n), dtype=bool)
    rows = np.arange(n)[:, None]
    hits_a[rows, top_a] = True
    hits_b[rows, top_b] = True
    return float((hits_a & hits_b).sum(1).mean() / m)


def reference_encoding(
    texts: Sequence[str], dim: int = 64, seed: int = 0
) -> Float[np.ndarray, "n dim"]:
    """TF-IDF of the texts reduced to ``dim`` (or fewer) components with truncated SVD.

    A bag-of-words reference is what "the model encodes the input's content" can be checked
    against offline. ``dim`` is clipped to what the vocabulary and the number of texts allow.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    # whole words, however short: the organism's inputs are one-token words like "ox"
    tfidf = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b").fit_transform(list(texts))
    k = min(dim, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    if k < 1:
        return tfidf.toarray()
    return TruncatedSVD(n_components=k, random_state=seed).fit_transform(tfidf)


def random_reference(n: int, dim: int = 64, seed: int = 0) -> Float[np.ndarray, "n dim"]:
    """Gaussian vectors: a reference with no relation to anything, the chance-level control."""
    return np.random.default_rng(seed).standard_normal((n, dim))
