"""Telling attention where each position is: the causal mask and positional encodings.

Self-attention treats its inputs as a set: permuting the positions permutes the outputs.
Order enters in two ways: a mask that hides the future (for a language model), and a
vector per position added to the input embeddings, either fixed (sinusoidal) or learned.
"""

import numpy as np

from nn import init
from nn.module import Module, Parameter
from tensorgrad import ShapeError, as_variable


def generate_square_subsequent_mask(size, dtype=np.float32):
    """The causal mask of ``size`` positions, as PyTorch's ``nn.Transformer`` gives it:

        M[i, j] = 0 for j ≤ i (the past and the present),  -inf for j > i (the future)

    A floating mask is added to the scores by both ``F.scaled_dot_product_attention`` and
    ``nn.MultiheadAttention``, so this one means the same to both (their boolean masks have
    opposite conventions).
    """
    if size < 0:
        raise ValueError(f"generate_square_subsequent_mask: size must be >= 0, got {size}")
    return np.triu(np.full((size, size), -np.inf, dtype=dtype), k=1)


def sinusoidal_encoding(length, d_model, dtype=np.float32):
    """The (length, d_model) table of Vaswani et al. (2017), for positions p and i < d_model/2:

        PE[p, 2i] = sin(p / 10000^(2i/d_model)),   PE[p, 2i+1] = cos(p / 10000^(2i/d_model))

    Each pair of columns is a rotation at its own frequency, so PE[p + k] is a linear
    function of PE[p] for every offset k.
    """
    positions = np.arange(length, dtype=np.float64)[:, None]
    frequencies = 10000.0 ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)
    table = np.zeros((length, d_model))
    table[:, 0::2] = np.sin(positions * frequencies)
    table[:, 1::2] = np.cos(positions * frequencies[: d_model // 2])
    return table.astype(dtype)


class _PositionalEncoding(Module):
    """x + P[:T] for x of shape (T, B, d_model), or (B, T, d_model) with ``batch_first``."""

    def __init__(self, d_model, max_len, batch_first):
        super().__init__()
        if d_model < 1 or max_len < 1:
            raise ValueError(f"{type(self).__name__}: d_model and max_len must be positive, got "
                             f"{d_model} and {max_len}")
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first

    def positions(self, T, dtype):
        """The (T, d_model) vectors of positions 0..T-1."""
        raise NotImplementedError

    def forward(self, x):
        x = as_variable(x)
        T = x.shape[1] if self.batch_first else x.shape[0]
        if x.ndim != 3 or x.shape[-1] != self.d_model or T > self.max_len:
            layout = "(B, T, d_model)" if self.batch_first else "(T, B, d_model)"
            raise ShapeError(f"{type(self).__name__}: input must be {layout} with d_model={self.d_model} "
                             f"and T <= max_len={self.max_len}, got shape {x.shape}")
        table = self.positions(T, x.dtype)
        return x + (table if self.batch_first else table.reshape(T, 1, self.d_model))

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class SinusoidalPositionalEncoding(_PositionalEncoding):
    """Adds the fixed :func:`sinusoidal_encoding` (no parameters; any length up to ``max_len``)."""

    def __init__(self, d_model, max_len=5000, batch_first=False):
        super().__init__(d_model, max_len, batch_first)
        self._table = sinusoidal_encoding(max_len, d_model, np.float64)

    def positions(self, T, dtype):
        return self._table[:T].astype(dtype)  # in the input's dtype: a constant, not a parameter


class LearnedPositionalEncoding(_PositionalEncoding):
    """Adds a learned vector per position: the parameter ``weight`` (max_len, d_model),
    initialised from N(0, 0.02²) as in GPT-2; it knows no position beyond ``max_len``."""

    def __init__(self, d_model, max_len, batch_first=False):
        super().__init__(d_model, max_len, batch_first)
        self.weight = Parameter(init.normal((max_len, d_model), std=0.02))

    def positions(self, T, dtype):
        return self.weight[:T]
