"""Reductions and normalisations along axes: sum, mean, max, logsumexp, softmax, log_softmax."""

import numpy as np

from tensorgrad.function import Function
from tensorgrad.functions._util import keepdims_shape, normalize_axis
from tensorgrad.functions.elementwise import exp
from tensorgrad.functions.shape import broadcast_to, reshape


def _spread(gy, x, axes):
    """∂L/∂y of a reduction over ``axes`` broadcast back to the shape of its input ``x``."""
    return broadcast_to(reshape(gy, keepdims_shape(x.shape, axes)), x.shape)


class Sum(Function):
    """y = Σ x over ``axes``;  ∂L/∂x = ∂L/∂y broadcast back."""

    op = "sum"

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _spread(gy, self.inputs[0], self.axes)


class Mean(Function):
    """y = (1/n) Σ x over ``axes``;  ∂L/∂x = ∂L/∂y / n broadcast back."""

    op = "mean"

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        n = int(np.prod([x.shape[a] for a in self.axes]))
        return _spread(gy, x, self.axes) / n


class Max(Function):
    """y = max x over ``axes``; the gradient goes to the maxima, split evenly at ties."""

    op = "max"

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        empty = [a for a in self.axes if x.shape[a] == 0]
        if empty:  # the maximum of nothing (an empty array with other axes reduced has one: empty)
            raise ValueError(f"axis {empty[0]} to reduce over is empty, in shape {x.shape}")
        return x.max(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        y = reshape(self.outputs[0](), keepdims_shape(x.shape, self.axes))
        return MaxGrad(self.axes)(_spread(gy, x, self.axes), x, y)


class MaxGrad(Function):
    """The backward of max as one node: gx = g ⊙ s for g = ∂L/∂y spread over x, with the share
    s = [x = y] / Σ [x = y] of each maximum (ties split evenly); s is piecewise constant."""

    op = "max_grad"

    def __init__(self, axes):
        self.axes = axes

    def forward(self, g, x, y):
        hits = x == y
        return g * (hits / hits.sum(axis=self.axes, keepdims=True)).astype(x.dtype)

    def backward(self, ggx):
        _, x, y = self.inputs
        return MaxGrad(self.axes)(ggx, x, y), None, None


class LogSumExp(Function):
    """y = log Σ exp x over ``axes``, shifted by the maximum for stability.

    ∂L/∂x = ∂L/∂y · softmax(x) = ∂L/∂y · exp(x - y).
    """

    op = "logsumexp"

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        m = x.max(axis=self.axes, keepdims=True, initial=-np.inf)  # log Σ over no element: -inf
        m = np.where(np.isfinite(m), m, 0)  # an all -inf slice: shift by 0, not by -inf
        with np.errstate(divide="ignore"):  # log 0 = -inf is the right answer there
            y = np.log(np.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return y if self.keepdims else y.reshape([n for i, n in enumerate(y.shape)
                                                  if i not in self.axes])

    def backward(self, gy):
        x = self.inputs[0]
        y = reshape(self.outputs[0](), keepdims_shape(x.shape, self.axes))
        return _spread(gy, x, self.axes) * exp(x - y)


class Softmax(Function):
    """yᵢ = exp(xᵢ) / Σⱼ exp(xⱼ) along ``axis``;  ∂L/∂x = y ⊙ (∂L/∂y - Σ ∂L/∂y ⊙ y)."""

    op = "softmax"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        z = x - x.max(axis=self.axis, keepdims=True)
        y = np.exp(z)
        y /= y.sum(axis=self.axis, keepdims=True)
        return y

    def backward(self, gy):
        y = self.outputs[0]()
        gx = y * gy
        return gx - y * sum(gx, self.axis, keepdims=True)


class LogSoftmax(Function):
    """yᵢ = xᵢ - log Σⱼ exp(xⱼ) along ``axis``;  ∂L/∂x = ∂L/∂y - exp(y) Σ ∂L/∂y."""

    op = "log_softmax"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        z = x - x.max(axis=self.axis, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        y = self.outputs[0]()
        return gy - exp(y) * sum(gy, self.axis, keepdims=True)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - the name users expect, as np.sum
    """Σ x over ``axis`` (None: all axes)."""
    return Sum(normalize_axis(axis, x.ndim, "sum"), keepdims)(x)


def mean(x, axis=None, keepdims=False):
    """The average of ``x`` over ``axis`` (None: all axes)."""
    return Mean(normalize_axis(axis, x.ndim, "mean"), keepdims)(x)


def max(x, axis=None, keepdims=False):  # noqa: A001 - the name users expect, as np.max
    """The maximum of ``x`` over ``axis`` (None: all axes)."""
    return Max(normalize_axis(axis, x.ndim, "max"), keepdims)(x)


def logsumexp(x, axis=None, keepdims=False):
    """log Σ exp x over ``axis``, computed without overflow."""
    return LogSumExp(normalize_axis(axis, x.ndim, "logsumexp"), keepdims)(x)


def softmax(x, axis=-1):
    """The softmax of ``x`` along one ``axis``."""
    (axis,) = normalize_axis(_one(axis, "softmax"), x.ndim, "softmax")
    return Softmax(axis)(x)


def log_softmax(x, axis=-1):
    """The logarithm of the softmax of ``x`` along one ``axis``, computed stably."""
    (axis,) = normalize_axis(_one(axis, "log_softmax"), x.ndim, "log_softmax")
    return LogSoftmax(axis)(x)


def _one(axis, op):
    """``axis``, which must be one int (a softmax normalises along one axis)."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be one int, got {axis!r}")
    return axis
