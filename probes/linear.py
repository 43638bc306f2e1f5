"""Cross-validated logistic-regression probes, the third view on the summarize step.

A linear probe is stronger than a centroid classifier (it may weigh directions), so a layer
where the probe succeeds but centroids fail holds the information without the cluster geometry
the circuit relies on. Features are standardised so residual streams with a few huge
dimensions do not stall the solver.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from probes.centroid import as_matrix


def logistic_probe_accuracy(
    X: ArrayLike, y: Sequence | ArrayLike, folds: int = 5, seed: int = 0, max_iter: int = 1000
) -> float:
    """Mean held-out accuracy of a standardised logistic regression over stratified folds.

    ``folds`` is reduced to the size of the rarest class (at least 2) so small test batches
    still split; a training fold that happens to hold one class predicts that class.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xm, ya = as_matrix(X), np.asarray(y)
    if len(Xm) < 2:
        return float("nan")
    _, counts = np.unique(ya, return_counts=True)
    n_splits = max(2, min(folds, int(counts.min()), len(Xm)))
    if counts.min() >= 2:
        splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    else:  # a singleton class cannot be stratified
        splitter = KFold(min(n_splits, len(Xm)), shuffle=True, random_state=seed)
    correct = 0
    for train, test in splitter.split(Xm, ya):
        if len(np.unique(ya[train])) < 2:
            correct += int((ya[test] == ya[train][0]).sum())
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
        clf.fit(Xm[train], ya[train])
        correct += int((clf.predict(Xm[test]) == ya[test]).sum())
    return correct / len(Xm)
