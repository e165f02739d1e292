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

from tensorgrad.function import Function, InputError, ShapeError
from tensorgrad.functions.arithmetic import matmul
from tensorgrad.functions.elementwise import exp, tanh, where
from tensorgrad.functions.neural import dropout
from tensorgrad.functions.reductions import softmax
from tensorgrad.functions.shape import swap_last_axes
from tensorgrad.variable import as_variable, data_of

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
    op = "scaled_dot_product_attention"
    query, key, value = (as_variable(a) for a in (query, key, value))
    _check_operands(op, query, key, value)
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{op}: give attn_mask or is_causal=True, not both")
        attn_mask = np.tril(np.ones((L, S), dtype=bool))
    mask = None
    if attn_mask is not None:
        attn_mask = data_of(attn_mask)
        if attn_mask.ndim < 2 or not all(m in (1, n) for m, n in zip(attn_mask.shape[-2:], (L, S))):
            raise ShapeError(f"{op}: attn_mask of shape {attn_mask.shape} does not broadcast to "
                             f"(..., L={L}, S={S})")
        attn_mask = mask_input(op, attn_mask)
        scores_shape = np.broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (L, S)
        try:
            shape = np.broadcast_shapes(attn_mask.shape, scores_shape)
        except ValueError:
            raise ShapeError(f"{op}: attn_mask of shape {attn_mask.shape} does not broadcast to the "
                             f"scores' shape {scores_shape}") from None
        mask = attention_mask([(attn_mask, None, True)], shape, query.dtype)
        if is_causal and S:  # every query sees key 0: no row to zero
            mask = (mask[0], None, mask[2])
    output, _ = attention(query, key, value, mask, dropout_p, scale)
    return output


def attention(query, key, value, mask=None, dropout_p=0.0, scale=None):
    """(A V, A) for A = softmax(Q Kᵀ · scale + added, with ``blocked`` pairs at -∞), zeroed outside ``alive``.

    ``mask`` is None or (blocked, alive, added) from :func:`attention_mask`: ``blocked`` a
    boolean array of the scores' shape (..., L, S), True where a query may not attend to a
    key and never True over a whole row; ``alive`` (..., L, 1) False at the rows to zero (the
    queries with no key to attend to, softmaxed unmasked: finite all the way, gradient 0),
    or None; ``added`` a finite floating array, or None. The weights returned are those
    after dropout, the ones that multiply V.
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = matmul(query, swap_last_axes(key)) * scale
    alive = None
    if mask is not None:
        blocked, alive, added = mask
        if added is not None:
            scores = scores + added
        scores = where(blocked, np.asarray(-np.inf, dtype=scores.dtype), scores)
    weights = softmax(scores, axis=-1)
    if alive is not None:
        weights = where(alive, weights, np.zeros((), dtype=weights.dtype))
    if dropout_p:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, value), weights


class AttentionMask(Function):
    """The masks :func:`attention` applies, from a user's masks: a Function, so that a replayed
    trace (``tg.jit``) computes them from each call's masks, and checks them, again.

    The inputs are one or more masks, each read as ``conventions`` says, a pair (the shape
    to reshape it to or None, ``allowed_when_true``). A boolean mask m blocks the pairs where
    it is False if ``allowed_when_true`` (the functional convention), else where it is True
    (the modules'). A floating mask is added to the scores; its -inf entries block. With B
    the union of the blocked pairs broadcast to ``shape`` (the scores' shape), the outputs are

        blocked = B ∧ ¬dead     where dead = ⋀ₛ B[..., s]: the rows B blocks entirely
        alive = ¬dead           (..., L, 1)
        added = Σ the floating masks, 0 at their -inf, in ``dtype`` (an output only if there is one)

    A dead row is an error if ``dead_row_error`` is a message (``str.format``-ted with
    ``sequence`` and ``query``, the first and the next-to-last index of the first dead row),
    else its queries get the output 0. The outputs have no gradient (``differentiable``).
    """

    op = "attention_mask"
    differentiable = False

    def __init__(self, conventions, shape, dtype, dead_row_error=None):
        self.conventions, self.shape, self.dtype = conventions, shape, dtype
        self.dead_row_error = dead_row_error

    def forward(self, *masks):
        blocked = added = None
        for m, (shape, allowed_when_true) in zip(masks, self.conventions, strict=True):
            if shape is not None:
                m = m.reshape(shape)
            if m.dtype == bool:
                m_blocked = ~m if allowed_when_true else m
            else:
                m_blocked = np.isneginf(m)
                m_added = np.where(m_blocked, 0, m).astype(self.dtype)  # float32 scores stay float32
                added = m_added if added is None else added + m_added
            blocked = m_blocked if blocked is None else blocked | m_blocked
        blocked = np.broadcast_to(blocked, self.shape)
        dead = blocked.all(axis=-1, keepdims=True)
        if self.dead_row_error is not None and dead.any():
            first = np.argwhere(dead)[0]
            raise InputError(self.dead_row_error.format(sequence=first[0], query=first[-2]))
        outputs = (blocked & ~dead, ~dead)
        return outputs if added is None else outputs + (added,)


def attention_mask(masks, shape, dtype, dead_row_error=None):
    """:func:`attention`'s mask (blocked, alive, added) from a user's masks, by :class:`AttentionMask`.

    ``masks``: (mask, shape to reshape it to or None, allowed_when_true) for each, the mask
    from :func:`mask_input`. ``alive`` is None where dead rows are an error (there are none),
    and ``added`` where no mask is floating.
    """
    conventions = tuple((reshape, allowed_when_true) for _, reshape, allowed_when_true in masks)
    function = AttentionMask(conventions, shape, dtype, dead_row_error)
    blocked, alive, *added = function(*(m for m, _, _ in masks))
    return blocked, (alive if dead_row_error is None else None), (added[0] if added else None)


def mask_input(op, mask, name="attn_mask"):
    """A user's mask (an ndarray, or a Variable's data) as an input of :class:`AttentionMask`,
    checked; the array itself, so that a replayed trace reads each call's mask (a floating mask
    gets no gradient)."""
    if mask.dtype != bool and mask.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be boolean or floating-point, got dtype {mask.dtype}")
    return mask


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
