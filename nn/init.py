"""Parameter initialisation, drawn from tensorgrad's seeded generator (``tg.manual_seed``)."""

import numpy as np

from tensorgrad import random


def uniform(shape, bound, dtype=np.float32):
    """An array of ``shape`` drawn from U(-bound, bound)."""
    return random.generator().uniform(-bound, bound, size=shape).astype(dtype)


def normal(shape, std=1.0, dtype=np.float32):
    """An array of ``shape`` drawn from N(0, std²)."""
    return (random.generator().standard_normal(size=shape) * std).astype(dtype)
