"""Shared test helpers: PyTorch as the oracle where it is installed."""

import os

# The tests' matrices are tiny: BLAS threads would only wait on each other (set before NumPy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest


@pytest.fixture
def torch():
    """The torch module, or skip the test where PyTorch is not installed.

    In CI (``CI=true``) the README's test command has installed PyTorch, so its absence is
    an error there: a skip would hide a missing install step behind a green run.
    """
    if os.environ.get("CI") == "true":
        import torch
    else:
        torch = pytest.importorskip("torch", reason="PyTorch is not installed (the 'oracle' extra): "
                                    "no comparison with it")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def rng():
    return np.random.default_rng(0)
