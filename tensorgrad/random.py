"""The random number generator behind dropout masks and parameter initialisation."""

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed tensorgrad's generator, so dropout masks and initial weights repeat."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator():
    """The ``numpy.random.Generator`` tensorgrad draws from."""
    return _generator
