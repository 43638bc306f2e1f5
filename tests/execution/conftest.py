"""Fixtures for the executor test modules: the torch threads each Ray worker has, and the two
models (the organism and the tiny Llama) the engine plans run on."""

from __future__ import annotations

import pytest
import torch

from interp.models import load_model


@pytest.fixture(scope="module", autouse=True)
def worker_threads():
    """The local reference computes with the torch threads each worker has (the cluster's 2
    CPUs shared by 2 workers: 1 each). A float32 sum split over another number of threads adds
    in another order, which moves a logit by a few ulps; with equal threads both sides add alike
    and the tables agree to TOL, whatever thread count an earlier test left behind."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=["organism", "tiny-llama"])
def model(request, tiny_dirs):
    # the organism by its registry name, the tiny Llama by its folder: workers load either
    return load_model("organism" if request.param == "organism" else tiny_dirs["llama"])
