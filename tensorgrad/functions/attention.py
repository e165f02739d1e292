"""Attention and the GELU activation: scaled dot-product attention, erf and gelu.

Scaled dot-product attention (Vaswani et al., 2017), for queries Q (..., L, E), keys
K (..., S, E) and values V (..., S, Ev):

    A = softmax(Q Kᵀ · scale + M)          (..., L, S), each row sums to 1 over the keys
    Attention(Q, K, V) = A V               (..., L, Ev)

where M is 0 where a query may attend to a key and -∞ where it may not. Every step is a
recorded Function (matmul, where, softmax, ...), so the backward pass, and the backward of
the backward, come from theirs.
"""

import math

import numpy as np

from tensorgrad.function import Function, ShapeError
from tensorgrad.functions.arithmetic import matmul
from tensorgrad.functions.elementwise import exp, tanh, where
from tensorgrad.functions.neural import dropout
from tensorgrad.functions.reductions import softmax
from tensorgrad.functions.shape import swap_last_axes
from tensorgrad.variable import Variable, as_variable

_ERF_COEFFICIENT = 2 / math.sqrt(math.pi)
_erf_scalar = np.frompyfunc(math.erf, 1, 1)


class Erf(Function):
    """y = erf(x) = (2/√π) ∫₀ˣ e^(-t²) dt;  dy/dx = (2/√π) e^(-x²)."""

    op = "erf"

    def forward(self, x):
        return np.asarray(_erf_scalar(x), dtype=x.dtype)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * (exp(-(x * x)) * _ERF_COEFFICIENT)


def erf(x):
    """The error function, elementwise (``math.erf`` on every element: exact, not fast)."""
    return Erf()(as_variable(x))


def gelu(x, approximate="none"):
    """The Gaussian error linear unit, as ``torch.nn.functional.gelu``:

        approximate='none':  y = x Φ(x) = ½ x (1 + erf(x / √2))
        approximate='tanh':  y = ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))

    Φ is the standard normal's cumulative distribution function.
    """
    x = as_variable(x)
    if approximate == "none":
        return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))
    if approximate == "tanh":
        return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None):
    """softmax(Q Kᵀ · scale + M) V, with PyTorch's semantics (``F.scaled_dot_product_attention``).

    ``query`` (..., L, E), ``key`` (..., S, E), ``value`` (..., S, Ev) → (..., L, Ev); the
    leading axes broadcast. ``attn_mask`` broadcasts to (..., L, S): a boolean mask is True
    where a query may attend to a key; a floating mask is added to the scores (use -inf to
    forbid). ``is_causal=True`` lets query i attend to keys 0..i only (the mask is aligned to
    the top left, as PyTorch's). ``scale`` defaults to 1/√E. ``dropout_p`` > 0 drops
    attention weights with that probability (pass 0 outside training, as PyTorch's modules
    do). A query that may attend to no key at all gets the output 0, as in PyTorch.
    """
    query, key, value = (as_variable(a) for a in (query, key, value))
    _check_operands("scaled_dot_product_attention", query, key, value)
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both")
        attn_mask = np.tril(np.ones((L, S), dtype=bool))
    blocked, added = split_mask("scaled_dot_product_attention", attn_mask, L, S, query.dtype,
                                allowed_when_true=True)
    if blocked is not None:
        scores_shape = np.broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (L, S)
        try:
            np.broadcast_shapes(blocked.shape, scores_shape)
        except ValueError:
            raise ShapeError(f"scaled_dot_product_attention: attn_mask of shape {blocked.shape} does not "
                             f"broadcast to the scores' shape {scores_shape}") from None
    output, _ = attention(query, key, value, blocked, added, dropout_p, scale)
    return output


def attention(query, key, value, blocked=None, added=None, dropout_p=0.0, scale=None):
    """(A V, A) for A = softmax(Q Kᵀ · scale + added, with ``blocked`` pairs at -∞).

    ``blocked`` is a boolean array broadcasting to (..., L, S), True where a query may not
    attend to a key, and ``added`` a finite floating array (or None). Rows where every key
    is blocked get weights 0 (so the output 0 and no gradient), not the NaN of 0/0. The
    weights returned are those after dropout, the ones that multiply V.
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = matmul(query, swap_last_axes(key)) * scale
    if added is not None:
        scores = scores + added
    dead = None
    if blocked is not None:
        blocked = np.broadcast_to(blocked, np.broadcast_shapes(blocked.shape, scores.shape))
        dead = blocked.all(axis=-1, keepdims=True)
        # A dead row is softmaxed unmasked and then zeroed: finite all the way, gradient 0.
        scores = where(blocked & ~dead, np.asarray(-np.inf, dtype=scores.dtype), scores)
    weights = softmax(scores, axis=-1)
    if dead is not None and dead.any():
        weights = where(~dead, weights, np.zeros((), dtype=weights.dtype))
    if dropout_p:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, value), weights


def split_mask(op, mask, L, S, dtype, *, allowed_when_true, name="attn_mask"):
    """A user's attention mask as (blocked, added) for :func:`attention`, checked.

    A boolean mask means "allowed" where True if ``allowed_when_true`` (the functional
    convention) else "blocked" where True (the modules' convention). A floating mask is
    added to the scores: its -inf entries become ``blocked``, the rest ``added`` (cast to
    ``dtype``, so that a float64 mask never promotes float32 scores). The mask's last two
    axes must be (L, S) or broadcast to it; ``name`` names it in errors.
    """
    if mask is None:
        return None, None
    mask = mask.data if isinstance(mask, Variable) else np.asarray(mask)
    if mask.ndim < 2 or not all(m in (1, n) for m, n in zip(mask.shape[-2:], (L, S))):
        raise ShapeError(f"{op}: {name} of shape {mask.shape} does not broadcast to "
                         f"(..., L={L}, S={S})")
    if mask.dtype == bool:
        return (~mask if allowed_when_true else mask), None
    if mask.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be boolean or floating-point, got dtype {mask.dtype}")
    blocked = np.isneginf(mask)
    return blocked, np.where(blocked, 0, mask).astype(dtype)


def _check_operands(op, query, key, value):
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError(f"{op}: query, key and value need at least 2 dimensions (..., length, features), "
                         f"got shapes {query.shape}, {key.shape} and {value.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"{op}: query (..., L, E) {query.shape}, key (..., S, E) {key.shape} and "
                         f"value (..., S, Ev) {value.shape} do not fit")
    for a in (query, key, value):
        if a.dtype.kind != "f":
            raise TypeError(f"{op}: query, key and value must be floating-point, got dtype {a.dtype}")
