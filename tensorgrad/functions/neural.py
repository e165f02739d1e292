"""Functions specific to neural networks: embedding lookup and dropout."""

import numpy as np

from tensorgrad import random
from tensorgrad.function import Function, ShapeError
from tensorgrad.functions.arithmetic import mul
from tensorgrad.functions.elementwise import where
from tensorgrad.variable import data_of


class Embedding(Function):
    """y = W[ids]: one row of the table W per index;  ∂L/∂W scatters ∂L/∂y back to the rows.

    The row ``padding_idx`` (if any) gets no gradient.
    """

    op = "embedding"

    def __init__(self, ids, padding_idx=None):
        self.ids = ids
        self.padding_idx = padding_idx

    def forward(self, W):
        ids, n = self.ids, W.shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= n):  # checked here, so a replay checks its own ids
            bad = ids[(ids < 0) | (ids >= n)].flat[0]
            raise IndexError(f"index {bad} is out of range for {n} embeddings")
        return np.take(W, ids, axis=0)

    def backward(self, gy):
        return EmbeddingGrad(self.ids, self.inputs[0].shape, self.padding_idx)(gy)


class EmbeddingGrad(Function):
    """The scatter-add of rows that is Embedding's backward; its backward is the lookup."""

    op = "embedding_grad"

    def __init__(self, ids, shape, padding_idx):
        self.ids = ids
        self.shape = shape
        self.padding_idx = padding_idx

    def forward(self, gy):
        gW = add_rows(self.ids.reshape(-1), gy.reshape(-1, self.shape[1]), self.shape[0])
        if self.padding_idx is not None:
            gW[self.padding_idx] = 0
        return gW

    def backward(self, ggW):
        if self.padding_idx is not None:
            keep = np.ones((self.shape[0], 1), dtype=bool)
            keep[self.padding_idx] = False
            ggW = where(keep, ggW, 0.0)
        return Embedding(self.ids)(ggW)


def add_rows(ids, rows, n):
    """The (n, D) array whose row i is the sum of the ``rows`` (N, D) with ``ids`` i (N,).

    Sorting the ids and summing each run of equal ids with one ``np.add.reduceat`` is many
    times faster than ``np.add.at``, which adds one row at a time.
    """
    total = np.zeros((n, rows.shape[1]), dtype=rows.dtype)
    if len(ids):
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
        total[ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return total


def embedding(indices, weight, padding_idx=None):
    """The rows of ``weight`` (num_embeddings, dim) picked by integer ``indices`` of any shape,
    in PyTorch's order; the row ``padding_idx`` gets no gradient."""
    ids = data_of(indices)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {ids.dtype}")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-d (num_embeddings, dim), got {weight.shape}")
    n = weight.shape[0]
    if padding_idx is not None and not -n <= padding_idx < n:
        raise IndexError(f"embedding: padding_idx {padding_idx} is out of range for {n} embeddings")
    return Embedding(ids, None if padding_idx is None else padding_idx % n)(weight)


class DropoutMask(Function):
    """A dropout mask m of ``shape``: each element 0 with probability p, else 1/(1-p) (0 for p = 1).

    A Function without inputs, so that a replayed trace (``tg.jit``) draws a new mask each
    time: ``random`` marks it as drawing from tensorgrad's generator.
    """

    op = "dropout_mask"
    random = True

    def __init__(self, shape, p, dtype):
        self.shape, self.p, self.dtype = shape, p, np.dtype(dtype)

    def forward(self):
        keep = random.generator().random(self.shape) >= self.p
        scale = np.zeros((), self.dtype) if self.p == 1.0 else np.asarray(1.0 / (1.0 - self.p), self.dtype)
        return keep * scale


def dropout_mask(shape, p, dtype):
    """A dropout mask, a Variable needing no gradient: each element 0 with probability ``p``,
    else 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout_mask: p must be in [0, 1], got {p}")
    return DropoutMask(tuple(shape), p, dtype)()


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training only):
    y = x ⊙ m for a mask m drawn anew at every call."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    return mul(x, dropout_mask(x.shape, p, x.dtype))
