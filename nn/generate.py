"""Sampling the next token from a model's logits, with a temperature and optional top-k filtering."""

import numpy as np

from tensorgrad import random


def next_token_probabilities(logits, temperature=1.0, top_k=None):
    """The distribution the next token is drawn from, in float64, over the last axis of ``logits``.

        p = softmax(z / temperature)   with z = logits, where only the ``top_k`` largest
                                       logits are kept (ties with the k-th are kept too)

    A temperature below 1 sharpens the distribution, above 1 flattens it.
    """
    if not temperature > 0:
        raise ValueError(f"sample_next: temperature must be > 0, got {temperature}")
    z = np.array(getattr(logits, "data", logits), dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"sample_next: logits must have a non-empty last axis, got shape {z.shape}")
    if np.isnan(z).any():
        raise ValueError("sample_next: the logits contain NaN")
    z /= temperature
    if top_k is not None:
        if int(top_k) != top_k or top_k < 1:
            raise ValueError(f"sample_next: top_k must be an integer >= 1, got {top_k}")
        k = min(int(top_k), z.shape[-1])
        kth_largest = np.partition(z, -k, axis=-1)[..., [-k]]
        z[z < kth_largest] = -np.inf
    largest = z.max(axis=-1, keepdims=True)
    if not np.isfinite(largest).all():
        raise ValueError("sample_next: the logits hold +inf, or only -inf, so they give no distribution")
    p = np.exp(z - largest)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def sample_next(logits, temperature=1.0, top_k=None, rng=None):
    """Draw the next token id from ``logits`` (a Variable or array of shape (C,) or (..., C)).

    The draw follows :func:`next_token_probabilities`; it is an int for logits of shape (C,),
    else an int64 array of the leading shape (one draw per row). ``rng`` is a
    ``numpy.random.Generator`` (default: tensorgrad's, seeded by ``tg.manual_seed``), so a
    seeded generator gives the same samples every run.
    """
    p = next_token_probabilities(logits, temperature, top_k)
    rng = random.generator() if rng is None else rng
    cdf = np.cumsum(p, axis=-1)
    # Scaling u by the total (≈ 1) keeps it below the last cdf value despite rounding, and
    # counting cdf ≤ u never lands on a token of probability zero.
    u = rng.random(p.shape[:-1] + (1,)) * cdf[..., -1:]
    ids = (cdf <= u).sum(axis=-1)
    return int(ids) if ids.ndim == 0 else ids.astype(np.int64)
