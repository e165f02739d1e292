"""Loss functions: softmax cross-entropy over class indices and the mean squared error."""

import math

import numpy as np

import tensorgrad.functions as F
from nn.module import Module
from tensorgrad import Function, ShapeError, as_variable
from tensorgrad.variable import data_of

_REDUCTIONS = ("mean", "sum", "none")


def softmax_cross_entropy(logits, targets, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """The cross-entropy between softmax(logits) and class indices, as PyTorch's ``cross_entropy``.

    ``logits`` z has shape (N, C) or (N, C, d1, ...) (or (C,) for one sample) and the integer
    ``targets`` t shape (N,) or (N, d1, ...) (or ()). With log p = log_softmax(z) over the
    class axis 1, computed stably, and ε = ``label_smoothing``, each position's loss is

        ℓ = -(1 - ε) log p_t - (ε / C) Σ_c log p_c,

    the cross-entropy to the target distribution (1 - ε)·onehot(t) + ε/C. Positions whose
    target is ``ignore_index`` have ℓ = 0 and do not count. ``reduction``: ``'none'`` gives
    ℓ with the shape of t, ``'sum'`` Σ ℓ and ``'mean'`` Σ ℓ divided by the number of
    positions not ignored (NaN when there are none, as in PyTorch).
    """
    op = "softmax_cross_entropy"
    _check_reduction(reduction, op)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    logits = as_variable(logits)
    targets = data_of(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, got dtype {targets.dtype} "
                        "(probability targets are not supported)")
    unbatched = logits.ndim == 1
    if unbatched and targets.ndim == 0:
        logits, targets = logits.reshape(1, -1), targets.reshape(1)
    expected = logits.shape[:1] + logits.shape[2:]
    if logits.ndim < 2 or targets.shape != expected:
        raise ShapeError(f"{op}: logits of shape {logits.shape} need targets of shape "
                         f"{() if unbatched else expected}, got {targets.shape}")
    loss = CrossEntropy(ignore_index, label_smoothing)(logits, targets)
    if reduction == "none":
        return loss.reshape(()) if unbatched else loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() * InverseCount(ignore_index, loss.dtype)(targets)


class CrossEntropy(Function):
    """ℓ = -Σ_c q_c log softmax(z)_c over the class axis 1, at each position, in one node:

        q = (1 - ε) onehot(t) + ε/C   (the target distribution, smoothed by ε)
        ∂ℓ/∂z = softmax(z) - q

    and ℓ = 0, with no gradient, at the positions whose target is ``ignore_index``: one node
    and a few passes over the logits instead of the composed log_softmax, gather and where.
    The targets t are an input (needing no gradient), so that a replayed trace reads each
    call's own.
    """

    op = "softmax_cross_entropy"

    def __init__(self, ignore_index, label_smoothing):
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, z, t):
        num_classes = z.shape[1]
        counted = t != self.ignore_index
        out_of_range = counted & ((t < 0) | (t >= num_classes))
        if out_of_range.any():
            raise IndexError(f"target {t[out_of_range][0]} is out of range for {num_classes} classes")
        at_targets = _flat_positions(np.where(counted, t, 0), z.shape)
        # With s = z - max(z) and S = Σ_c exp(s_c): log softmax(z)_c = s_c - log S, so
        # -log softmax(z)_t = log S - s_t and -Σ_c log softmax(z)_c = C log S - Σ_c s_c,
        # without an array of log-probabilities.
        shifted = z - z.max(axis=1, keepdims=True)
        picked = shifted.reshape(-1)[at_targets]
        shifted_sum = shifted.sum(axis=1) if self.label_smoothing > 0 else None
        p = np.exp(shifted, out=shifted)
        total = p.sum(axis=1, keepdims=True)
        p /= total
        self.saved = (at_targets, counted, p)
        log_total = np.log(total).squeeze(1)
        loss = log_total - picked
        if self.label_smoothing > 0:
            loss *= 1 - self.label_smoothing
            loss += self.label_smoothing * (log_total - shifted_sum / z.shape[1])
        return np.where(counted, loss, 0)

    def backward(self, g):
        """∂L/∂z = (softmax(z) - q) ⊙ w (w: g where counted, else 0), recorded from the inputs z
        and t alone, so that ``tg.grad`` inside a traced function (``tg.jit``) sees every step."""
        z, t = self.inputs
        smoothing, num_classes = self.label_smoothing, z.shape[1]
        column = t.reshape(t.shape[:1] + (1,) + t.shape[1:])  # (N, 1, d...), against the class axis
        classes = np.arange(num_classes).reshape((num_classes,) + (1,) * (t.ndim - 1))
        q = (column == classes).astype(z.dtype) * (1 - smoothing) + smoothing / num_classes
        weight = F.where(column != self.ignore_index, F.reshape(g, column.shape), 0.0)
        return (F.softmax(z, axis=1) - q) * weight, None

    def numpy_backward(self, g):
        """∂L/∂z = (softmax(z) - q) ⊙ w from the array g = ∂L/∂ℓ, on the saved softmax, without
        an array for q: one pass over the logits (two with ε)."""
        at_targets, counted, probabilities = self.saved
        smoothing, num_classes = self.label_smoothing, probabilities.shape[1]
        weight = np.where(counted, g, 0)  # w, one per position
        # One weight for every position (a mean or a sum, none ignored) multiplies as one number:
        # the same products, without broadcasting a column of weights across the classes.
        same = weight.size > 0 and (weight == weight.flat[0]).all()
        factor = weight.flat[0] if same else np.expand_dims(weight, 1)  # w against the class axis
        grad = probabilities * factor
        if smoothing > 0:
            grad -= (smoothing / num_classes) * factor
        grad.reshape(-1)[at_targets] -= (1 - smoothing) * weight
        return grad, None


class InverseCount(Function):
    """1/n for the number n of targets that are not ``ignore_index`` (NaN for n = 0, as in
    PyTorch's mean): the factor of the mean reduction, computed from the targets at each call."""

    op = "inverse_count"

    def __init__(self, ignore_index, dtype):
        self.ignore_index, self.dtype = ignore_index, dtype

    def forward(self, t):
        count = int(np.count_nonzero(t != self.ignore_index))
        return np.asarray(1.0 / count if count else math.nan, self.dtype)


def _flat_positions(t, shape):
    """The flat indices, in a C-ordered array of ``shape`` (N, C, d...), of the elements
    [n, t[n, d...], d...] (each position's target class): one gather or scatter over them is
    several times faster than ``take_along_axis``/``put_along_axis`` over the class axis."""
    N, C = shape[:2]
    D = math.prod(shape[2:])
    rows = np.arange(N).reshape(N, 1) * (C * D) + np.arange(D)
    return (rows + t.reshape(N, D).astype(np.intp) * D).reshape(t.shape)


def mse_loss(input, target, reduction="mean"):  # noqa: A002 - PyTorch's argument name
    """The squared error ℓ = (input - target)², averaged (``'mean'``), summed or kept (``'none'``).

    ``input`` and ``target`` must have the same shape; either may be a Variable.
    """
    _check_reduction(reduction, "mse_loss")
    input = as_variable(input)  # noqa: A001
    target = as_variable(target, like=input)
    if input.shape != target.shape:
        raise ShapeError(f"mse_loss: input of shape {input.shape} and target of shape {target.shape} "
                         "differ")
    difference = input - target
    loss = difference * difference
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


class SoftmaxCrossEntropy(Module):
    """:func:`softmax_cross_entropy` as a module: ``SoftmaxCrossEntropy(...)(logits, targets)``."""

    def __init__(self, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        _check_reduction(reduction, "SoftmaxCrossEntropy")
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, logits, targets):
        return softmax_cross_entropy(logits, targets, ignore_index=self.ignore_index,
                                     reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self):
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}")


class MSELoss(Module):
    """:func:`mse_loss` as a module: ``MSELoss(reduction)(input, target)``."""

    def __init__(self, reduction="mean"):
        super().__init__()
        _check_reduction(reduction, "MSELoss")
        self.reduction = reduction

    def forward(self, input, target):  # noqa: A002
        return mse_loss(input, target, self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
