"""Probes on synthetic data whose right answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from probes import (
    centroid_accuracy,
    cosine_kernel,
    kernel_alignment,
    logistic_probe_accuracy,
    random_reference,
    reference_encoding,
)


def clusters(n_per=20, n_classes=3, dim=8, spread=0.1, seed=0):
    """Tight clusters around far-apart centres: any sane classifier gets them all right."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim)) * 10
    y = np.repeat(np.arange(n_classes), n_per)
    return centres[y] + spread * rng.standard_normal((len(y), dim)), y


def test_centroid_separable_clusters_are_perfect():
    X, y = clusters()
    assert centroid_accuracy(X[::2], y[::2], X[1::2], y[1::2]) == 1.0
    # torch tensors and string labels are accepted the same way
    names = np.array(["a", "b", "c"])[y]
    assert centroid_accuracy(torch.tensor(X[::2]), names[::2], X[1::2], names[1::2]) == 1.0


def test_centroid_counts_swapped_and_unseen_labels_wrong():
    X, y = clusters(n_classes=2)
    assert centroid_accuracy(X[::2], y[::2], X[1::2], 1 - y[1::2]) == 0.0
    test_y = y[1::2].copy()
    test_y[:5] = 7  # a class the calibration set never saw cannot be predicted
    assert centroid_accuracy(X[::2], y[::2], X[1::2], test_y) == pytest.approx(1 - 5 / len(test_y))


def test_centroid_uses_euclidean_distance_to_the_mean():
    train = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    labels = ["a", "a", "b"]  # centroids at 1 and 10
    test = np.array([[5.4, 0.0], [5.6, 0.0]])
    assert centroid_accuracy(train, labels, test, ["a", "b"]) == 1.0


def test_cosine_kernel_has_a_zero_diagonal():
    S = cosine_kernel(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    assert np.allclose(np.diag(S), 0.0)
    assert S[0, 1] == pytest.approx(1 / math.sqrt(2))
    assert S[2].tolist() == [0.0, 0.0, 0.0]  # a zero vector has no direction, not NaN


def test_identical_and_rescaled_kernels_align_perfectly():
    X, _ = clusters(n_per=30)
    assert kernel_alignment(X, X, m=5) == 1.0
    assert kernel_alignment(X, 3.0 * X, m=5) == 1.0


def test_alignment_of_known_neighbour_sets():
    def unit(degrees):
        r = np.radians(degrees)
        return np.stack([np.cos(r), np.sin(r)], 1)

    A = unit(np.array([0, 10, 90, 100]))  # nearest neighbours: 0<->1, 2<->3
    B = unit(np.array([0, 90, 10, 100]))  # nearest neighbours: 0<->2, 1<->3
    assert kernel_alignment(A, B, m=1) == 0.0
    assert kernel_alignment(A, unit(np.array([0, 30, 80, 120])), m=1) == 1.0  # same pairs
    # m is clipped to n - 1: every other item is then a neighbour in both kernels
    assert kernel_alignment(A, B, m=64) == 1.0


def test_structured_beats_random_reference():
    X, _ = clusters(n_per=40, n_classes=4, spread=1.0)
    noisy = X + 0.3 * np.random.default_rng(1).standard_normal(X.shape)
    m, n = 10, len(X)
    structured = kernel_alignment(X, noisy, m)
    chance = kernel_alignment(X, random_reference(n, 16, seed=3), m)
    assert structured > 0.6
    assert chance < 0.25  # clusters of 40: a random neighbour shares the cluster ~ 1/4
    assert random_reference(n, 16, seed=3).shape == (n, 16)
    assert np.array_equal(random_reference(5, 4, 0), random_reference(5, 4, 0))


def test_reference_encoding_puts_shared_words_together():
    texts = ["cat dog", "dog cat", "red blue", "blue red", "cat dog", "red blue green"]
    E = reference_encoding(texts, dim=64)
    assert E.shape[0] == len(texts) and 1 <= E.shape[1] <= 64
    S = cosine_kernel(E)
    assert S[0, 1] == pytest.approx(1.0) and S[0, 4] == pytest.approx(1.0)
    assert abs(S[0, 2]) < 1e-6
    assert kernel_alignment(E, E, m=1) == 1.0


def test_logistic_probe_separable_and_random():
    X, y = clusters(n_per=25, n_classes=2)
    assert logistic_probe_accuracy(X, y) == 1.0
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((200, 20))
    coin = rng.integers(0, 2, 200)
    assert logistic_probe_accuracy(noise, coin) < 0.65
    # classes too small for five folds still split; a singleton class does not crash
    assert 0.0 <= logistic_probe_accuracy(X[:5], [0, 0, 1, 1, 2]) <= 1.0
