"""Arithmetic: + - * / % ** @, negation, dtype casts and the fused affine map.

Binary ops broadcast as NumPy does; the gradient of a broadcast operand is summed back to
its shape (``sum_to``).
"""

import numpy as np

from tensorgrad.function import Function, ShapeError
from tensorgrad.functions._util import operands
from tensorgrad.functions.elementwise import log, where
from tensorgrad.functions.shape import sum_to, swap_last_axes


def _reduce(gx, x):
    """The gradient of operand ``x`` of a broadcasting op, summed back to ``x``'s shape."""
    return gx if gx.shape == x.shape else sum_to(gx, x.shape)


class Add(Function):
    """y = a + b;  ∂y/∂a = ∂y/∂b = 1."""

    op = "add"

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return _reduce(gy, a), _reduce(gy, b)


class Sub(Function):
    """y = a - b;  ∂y/∂a = 1, ∂y/∂b = -1."""

    op = "sub"

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return _reduce(gy, a), _reduce(-gy, b)


class Mul(Function):
    """y = a ⊙ b;  ∂y/∂a = b, ∂y/∂b = a."""

    op = "mul"

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        ga = _reduce(gy * b, a) if a.requires_grad else None
        gb = _reduce(gy * a, b) if b.requires_grad else None
        return ga, gb


class Div(Function):
    """y = a / b;  ∂y/∂a = 1/b, ∂y/∂b = -a/b²."""

    op = "div"

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = gy / b
        return _reduce(ga, a), _reduce(-ga * a / b, b) if b.requires_grad else None


class Remainder(Function):
    """y = a mod b = a - b⌊a/b⌋ (the sign of b, as Python's % and torch.remainder);
    ∂y/∂a = 1, ∂y/∂b = -⌊a/b⌋ (⌊a/b⌋ is piecewise constant)."""

    op = "remainder"

    def forward(self, a, b):
        return np.mod(a, b)

    def backward(self, gy):
        a, b = self.inputs
        gb = None
        if b.requires_grad:
            gb = _reduce(-(gy * FloorDivide()(a, b)), b)
        return _reduce(gy, a), gb


class FloorDivide(Function):
    """q = ⌊a/b⌋, piecewise constant: its gradient is 0 wherever it is defined."""

    op = "floor_divide"

    def forward(self, a, b):
        return np.floor_divide(a, b)

    def backward(self, gq):
        return None, None


class Neg(Function):
    """y = -x."""

    op = "neg"

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = aᵇ;  ∂y/∂a = b·aᵇ⁻¹, ∂y/∂b = aᵇ·log a (computed only when b needs it).

    As in PyTorch, ∂y/∂a is 0 where b = 0 (a⁰ is constant, though at a = 0 the formula
    gives 0·0⁻¹ = NaN) and ∂y/∂b is 0 where a = 0 and b ≥ 0 (0ᵇ is 0 or 1 there, though
    0·log 0 is NaN). Only those points are masked, so elsewhere the gradients stay
    differentiable (b·aᵇ⁻¹ at b = 0 has the slope a⁻¹ in b).
    """

    op = "pow"

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if a.requires_grad:
            zero_to_zero = (a.data == 0) & (b.data == 0)
            ga = _reduce(where(zero_to_zero, 0.0, gy * b * a ** where(zero_to_zero, 1.0, b - 1)), a)
        if b.requires_grad:
            zero_base = (a.data == 0) & (b.data >= 0)
            gb = _reduce(where(zero_base, 0.0, gy * self.outputs[0]() * log(where(zero_base, 1.0, a))), b)
        return ga, gb


class MatMul(Function):
    """y = a @ b (NumPy's matmul: 1-d operands, batches and broadcasting included).

    ∂L/∂a = ∂L/∂y @ bᵀ and ∂L/∂b = aᵀ @ ∂L/∂y, summed over broadcast batch axes.
    """

    op = "matmul"

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: operands must have at least one dimension, got shapes "
                             f"{a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} are not aligned")
        if a.ndim > 2 and b.ndim == 2:  # one matmul over all leading axes, not one per leading index
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + b.shape[-1:])
        return np.matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        # View 1-d operands as a row (a) and a column (b), as matmul itself does.
        a2 = a if a.ndim > 1 else a.reshape(1, -1)
        b2 = b if b.ndim > 1 else b.reshape(-1, 1)
        g_shape = list(gy.shape)
        if b.ndim == 1:
            g_shape.append(1)
        if a.ndim == 1:
            g_shape.insert(len(g_shape) - 1, 1)
        g = gy.reshape(tuple(g_shape)) if tuple(g_shape) != gy.shape else gy
        ga = gb = None
        if a.requires_grad:
            ga = _reduce(matmul(g, swap_last_axes(b2)), a2).reshape(a.shape)
        if b.requires_grad:
            gb = _reduce(matmul(swap_last_axes(a2), g), b2).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """y = x Wᵀ + b for x of shape (..., in), W of shape (out, in) and b of shape (out,).

    ∂L/∂x = ∂L/∂y W, ∂L/∂W = Σ ∂L/∂yᵀ x and ∂L/∂b = Σ ∂L/∂y, summed over the leading axes.
    """

    op = "linear"

    def forward(self, x, W, b=None):
        if W.ndim != 2 or x.ndim == 0 or x.shape[-1] != W.shape[1]:
            raise ShapeError(f"linear: input of shape {x.shape} does not fit a weight of shape "
                             f"{W.shape} (expected (..., {W.shape[-1]}))")
        if b is not None and b.shape != (W.shape[0],):
            raise ShapeError(f"linear: bias of shape {b.shape} does not fit a weight of shape "
                             f"{W.shape}")
        y = x.reshape(-1, x.shape[-1]) @ W.T  # one matmul over all leading axes of x
        if b is not None:
            y += b
        return y.reshape(x.shape[:-1] + W.shape[:1])

    def backward(self, gy):
        x, W = self.inputs[:2]
        b = self.inputs[2] if len(self.inputs) == 3 else None
        gx = matmul(gy, W) if x.requires_grad else None
        rows = gy.reshape(-1, gy.shape[-1])
        gW = matmul(rows.T, x.reshape(-1, x.shape[-1])) if W.requires_grad else None
        gb = rows.sum(axis=0) if b is not None and b.requires_grad else None
        return (gx, gW) if b is None else (gx, gW, gb)


class AsType(Function):
    """y = x cast to ``dtype``; the gradient is cast back to x's dtype."""

    op = "astype"

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, gy):
        return astype(gy, self.inputs[0].dtype)


def add(a, b):
    return Add()(*operands(a, b, "add"))


def sub(a, b):
    return Sub()(*operands(a, b, "sub"))


def mul(a, b):
    return Mul()(*operands(a, b, "mul"))


def div(a, b):
    return Div()(*operands(a, b, "div"))


def neg(x):
    return Neg()(x)


def pow(a, b):  # noqa: A001 - the operator's name, as in operator.pow
    return Pow()(*operands(a, b, "pow"))


def remainder(a, b):
    return Remainder()(*operands(a, b, "remainder"))


def matmul(a, b):
    return MatMul()(*operands(a, b, "matmul"))


def linear(x, W, b=None):
    """The affine map y = x Wᵀ + b of ``nn.Linear`` in one Function."""
    return Linear()(x, W) if b is None else Linear()(x, W, b)


def astype(x, dtype):
    """``x`` cast to ``dtype`` (differentiable); no-op when the dtype already matches."""
    if np.dtype(dtype) == x.dtype:
        return x
    return AsType(dtype)(x)


