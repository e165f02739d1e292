"""Shape operations: reshape, transpose, broadcasting, indexing, concatenation and splitting.

None of them computes anything; their backward moves each gradient element back to where
its value came from (summing where one value went to several places).
"""

import numpy as np

from tensorgrad.function import Function, ShapeError
from tensorgrad.functions._util import sum_to_shape
from tensorgrad.variable import Variable


class Reshape(Function):
    op = "reshape"

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ShapeError(f"reshape: cannot reshape an array of shape {x.shape} "
                             f"({x.size} elements) into shape {self.shape}") from None

    def backward(self, gy):
        return reshape(gy, self.inputs[0].shape)


class Transpose(Function):
    op = "transpose"

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return np.transpose(x, self.axes)

    def backward(self, gy):
        if self.axes is None:
            return transpose(gy)
        return transpose(gy, tuple(np.argsort(self.axes)))


class BroadcastTo(Function):
    """y = x repeated along broadcast axes;  ∂L/∂x = sum_to(∂L/∂y, x.shape)."""

    op = "broadcast_to"

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return np.broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.inputs[0].shape)


class SumTo(Function):
    """y = x summed over broadcast axes down to ``shape``;  ∂L/∂x = broadcast_to(∂L/∂y)."""

    op = "sum_to"

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        try:
            broadcasts = np.broadcast_shapes(self.shape, x.shape) == x.shape
        except ValueError:
            broadcasts = False
        if not broadcasts:
            raise ShapeError(f"sum_to: shape {x.shape} does not broadcast from {self.shape}")
        return sum_to_shape(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.inputs[0].shape)


class GetItem(Function):
    """y = x[index] for basic (slices, ints, None, ...) and integer-array indexing.

    ∂L/∂x is ∂L/∂y scattered back into zeros; repeated indices accumulate.
    """

    op = "getitem"

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, gy):
        return GetItemGrad(self.index, self.inputs[0].shape)(gy)


class GetItemGrad(Function):
    """The scatter-add that is getitem's backward; its own backward is getitem again."""

    op = "getitem_grad"

    def __init__(self, index, shape):
        self.index = index
        self.shape = shape

    def forward(self, gy):
        gx = np.zeros(self.shape, dtype=gy.dtype)
        if _is_basic(self.index):
            gx[self.index] = gy  # basic indexing never repeats an element
        else:
            np.add.at(gx, self.index, gy)
        return gx

    def backward(self, ggx):
        return getitem(ggx, self.index)


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) for p in parts)


class Concat(Function):
    """y = [x₁, x₂, ...] joined along ``axis``;  ∂L/∂xᵢ is ∂L/∂y's slice of xᵢ."""

    op = "concat"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        sizes = np.cumsum([x.shape[self.axis] for x in self.inputs])[:-1]
        return split(gy, [int(s) for s in sizes], self.axis)


class Stack(Function):
    """y = [x₁, x₂, ...] stacked along a new ``axis``;  ∂L/∂xᵢ = ∂L/∂y taken at i."""

    op = "stack"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return np.stack(xs, axis=self.axis)

    def backward(self, gy):
        return Unbind(self.axis)(gy)


class Unbind(Function):
    """(y₀, y₁, ...) = the slices x[..., i, ...] along ``axis`` (that axis removed);
    ∂L/∂x = stack(∂L/∂yᵢ). The inverse of Stack, in one node."""

    op = "unbind"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        return tuple(x if self.axis == 0 else np.moveaxis(x, self.axis, 0))  # moveaxis costs µs

    def backward(self, *gys):
        return stack(gys, self.axis)


class Split(Function):
    """(y₁, y₂, ...) = x cut along ``axis`` (as ``np.split``);  ∂L/∂x = concat(∂L/∂yᵢ)."""

    op = "split"

    def __init__(self, indices_or_sections, axis):
        self.indices_or_sections = indices_or_sections
        self.axis = axis

    def forward(self, x):
        return tuple(np.split(x, self.indices_or_sections, axis=self.axis))

    def backward(self, *gys):
        return concat(gys, self.axis)


def reshape(x, shape):
    """``x`` with a new shape of the same size (one axis may be -1)."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if isinstance(x, Variable) and x.shape == shape:
        return x
    return Reshape(shape)(x)


def transpose(x, axes=None):
    """``x`` with its axes permuted (reversed when ``axes`` is None)."""
    if axes is not None:
        given = tuple(int(a) for a in axes)
        axes = tuple(a % max(x.ndim, 1) for a in given)  # non-negative, so argsort inverts them
        if sorted(axes) != list(range(x.ndim)) or any(not -x.ndim <= a < x.ndim for a in given):
            raise ShapeError(f"transpose: axes {given} are not a permutation for shape {x.shape}")
    return Transpose(axes)(x)


def swap_last_axes(x):
    """``x`` with its last two axes swapped (the matrix transpose of a batch)."""
    axes = list(range(x.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return transpose(x, axes)


def broadcast_to(x, shape):
    """``x`` broadcast to ``shape`` as NumPy does."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ShapeError(f"broadcast_to: shape {x.shape} cannot be broadcast to {shape}") from None
    return BroadcastTo(shape)(x)


def sum_to(x, shape):
    """``x`` summed down to ``shape`` (the inverse of broadcasting to x's shape)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo(shape)(x)


def getitem(x, index):
    """``x[index]``: basic slicing and integer-array indexing, differentiable."""
    if isinstance(index, Variable):
        index = index.data
    elif isinstance(index, list):
        index = np.asarray(index)
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Variable) else np.asarray(i) if isinstance(i, list)
                      else i for i in index)
    return GetItem(index)(x)


def concat(xs, axis=0):
    """The Variables ``xs`` joined along an existing ``axis``."""
    xs = list(xs)
    if not xs:
        raise ValueError("concat: needs at least one input")
    return Concat(axis)(*xs)


def stack(xs, axis=0):
    """The Variables ``xs`` (all of one shape) stacked along a new ``axis``."""
    xs = list(xs)
    if not xs:
        raise ValueError("stack: needs at least one input")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise ShapeError(f"stack: inputs must share one shape, got {sorted(shapes)}")
    return Stack(axis)(*xs)


def unbind(x, axis=0):
    """The slices of ``x`` along ``axis``, each without that axis (the inverse of ``stack``)."""
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"unbind: axis {axis} is out of range for shape {x.shape}")
    return Unbind(axis % x.ndim)(x)


def split(x, indices_or_sections, axis=0):
    """``x`` cut along ``axis`` into equal sections, or at the given indices (``np.split``)."""
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"split: axis {axis} is out of range for shape {x.shape}")
    if not isinstance(indices_or_sections, (int, np.integer)):
        indices_or_sections = [int(i) for i in indices_or_sections]
    return Split(indices_or_sections, axis)(x)
