"""Elementwise functions: exp, log, sqrt, tanh, sigmoid, relu, abs, clip, maximum, where, and
the comparisons (==, !=, <, <=, >, >=).

Each backward multiplies the incoming gradient by the derivative, written with the
function's output where that is cheaper (exp, sqrt, tanh, sigmoid).
"""

import numpy as np

from tensorgrad.function import Function, ShapeError
from tensorgrad.functions._util import one, operands
from tensorgrad.functions.shape import sum_to
from tensorgrad.variable import data_of


class Exp(Function):
    """y = eˣ;  dy/dx = y."""

    op = "exp"

    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return gy * self.outputs[0]()


class Log(Function):
    """y = ln x;  dy/dx = 1/x."""

    op = "log"

    def forward(self, x):
        return np.log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = √x;  dy/dx = 1/(2y)."""

    op = "sqrt"

    def forward(self, x):
        return np.sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.outputs[0]())


class Tanh(Function):
    """y = tanh x;  dy/dx = 1 - y²."""

    op = "tanh"

    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        return TanhGrad()(gy, self.outputs[0]())


class TanhGrad(Function):
    """The backward of tanh as one node: gx = gy ⊙ (1 - y²) for y = tanh x.

    Its own backward (for second derivatives): ∂gx/∂gy = 1 - y², ∂gx/∂y = -2 gy ⊙ y.
    """

    op = "tanh_grad"

    def forward(self, gy, y):
        return gy * (one(y.dtype) - y * y)

    def backward(self, ggx):
        gy, y = self.inputs
        return TanhGrad()(ggx, y), -2 * ggx * gy * y


class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ);  dy/dx = y(1 - y).

    Computed by :func:`sigmoid_array`, which keeps full relative precision and warns of no overflow.
    """

    op = "sigmoid"

    def forward(self, x):
        return sigmoid_array(x)

    def backward(self, gy):
        return SigmoidGrad()(gy, self.outputs[0]())


def sigmoid_array(x, out=None):
    """σ(x) = 1 / (1 + e⁻ˣ) on an ndarray, to full relative precision on both sides.

    Each of its three steps keeps relative precision: e⁻ˣ (to an ulp, however large),
    1 + e⁻ˣ and the reciprocal, so σ(x) is exact to a few ulps even where it is tiny. Below
    x ≈ -88.7 (float32; -709.8 in float64) e⁻ˣ overflows to inf and σ(x) rounds to 0, as it
    should: that overflow is expected, and not reported. ``out``: where to write σ(x)
    (may be ``x`` itself).
    """
    e = np.negative(x, out=np.empty_like(x) if out is None else out)  # an array even for 0-d x
    with np.errstate(over="ignore"):
        np.exp(e, out=e)
    e += one(e.dtype)
    return np.reciprocal(e, out=e)


class SigmoidGrad(Function):
    """The backward of σ as one node: gx = gy ⊙ y(1 - y) for y = σ(x).

    Its own backward (for second derivatives): ∂gx/∂gy = y(1 - y), ∂gx/∂y = gy ⊙ (1 - 2y).
    """

    op = "sigmoid_grad"

    def forward(self, gy, y):
        return gy * y * (one(y.dtype) - y)

    def backward(self, ggx):
        gy, y = self.inputs
        return SigmoidGrad()(ggx, y), ggx * gy * (1 - 2 * y)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0."""

    op = "relu"

    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, gy):
        return ReLUGrad()(gy, self.outputs[0]())


class ReLUGrad(Function):
    """The backward of relu as one node: gx = gy ⊙ [y > 0] for y = relu(x).

    [y > 0] is piecewise constant: ∂gx/∂gy = [y > 0], ∂gx/∂y = 0.
    """

    op = "relu_grad"

    def forward(self, gy, y):
        return gy * (y > 0)

    def backward(self, ggx):
        return ReLUGrad()(ggx, self.inputs[1]), None


class Abs(Function):
    """y = |x|;  dy/dx = sign x (0 at x = 0, as PyTorch)."""

    op = "abs"

    def forward(self, x):
        return np.abs(x)

    def backward(self, gy):
        return AbsGrad()(gy, self.inputs[0])


class AbsGrad(Function):
    """The backward of abs as one node: gx = gy ⊙ sign x.

    sign x is piecewise constant: ∂gx/∂gy = sign x, ∂gx/∂x = 0.
    """

    op = "abs_grad"

    def forward(self, gy, x):
        return gy * np.sign(x)

    def backward(self, ggx):
        return AbsGrad()(ggx, self.inputs[1]), None


class Clip(Function):
    """y = min(max(x, lo), hi);  dy/dx = 1 where lo ≤ x ≤ hi, else 0."""

    op = "clip"

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return np.clip(x, self.lo, self.hi)

    def backward(self, gy):
        return ClipGrad(self.lo, self.hi)(gy, self.inputs[0])


class ClipGrad(Function):
    """The backward of clip as one node: gx = gy ⊙ [lo ≤ x ≤ hi]; piecewise constant in x."""

    op = "clip_grad"

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, gy, x):
        inside = np.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        return gy * inside

    def backward(self, ggx):
        return ClipGrad(self.lo, self.hi)(ggx, self.inputs[1]), None


class Maximum(Function):
    """y = max(a, b) elementwise; the gradient goes to the larger, split evenly at ties."""

    op = "maximum"

    def forward(self, a, b):
        return np.maximum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga, gb = MaximumGrad()(gy, a, b)
        return sum_to(ga, a.shape), sum_to(gb, b.shape)


class MaximumGrad(Function):
    """The backward of maximum as one node: (gy ⊙ s, gy ⊙ (1 - s)) with the share
    s = [a > b] + ½[a = b] of a; s is piecewise constant in a and b."""

    op = "maximum_grad"

    def forward(self, gy, a, b):
        share_a = ((a > b) + 0.5 * (a == b)).astype(gy.dtype)
        return gy * share_a, gy * (1 - share_a)

    def backward(self, gga, ggb):
        _, a, b = self.inputs
        return MaximumGrad()(gga, a, b)[0] + MaximumGrad()(ggb, a, b)[1], None, None


class Where(Function):
    """y = a where cond else b (cond a constant boolean array)."""

    op = "where"

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        return np.where(self.condition, a, b)

    def backward(self, gy):
        a, b = self.inputs
        zero = np.zeros((), dtype=gy.dtype)
        ga = sum_to(Where(self.condition)(gy, zero), a.shape) if a.requires_grad else None
        gb = sum_to(Where(self.condition)(zero, gy), b.shape) if b.requires_grad else None
        return ga, gb


class Compare(Function):
    """y = a ⊙ b for a comparison ⊙ (``np.equal``, ``np.less``, ...): a boolean array without
    gradient. A Function, so that ``tg.jit`` replays it on each call's values."""

    differentiable = False

    def __init__(self, ufunc, op):
        self.ufunc, self.op = ufunc, op

    def forward(self, a, b):
        return np.asarray(self.ufunc(a, b))


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    return Sigmoid()(x)


def relu(x):
    return ReLU()(x)


def abs(x):  # noqa: A001 - the builtin's name, as np.abs and torch.abs
    return Abs()(x)


def clip(x, lo=None, hi=None):
    """``x`` limited to [lo, hi] (either bound may be None). The bounds are numbers (a one-element
    Variable is read as its value: frozen in a ``tg.jit`` trace, which warns)."""
    if lo is None and hi is None:
        raise ValueError("clip: give at least one of lo and hi")
    # Python floats, so that a NumPy float64 bound does not promote a float32 x.
    lo, hi = (None if bound is None else float(bound) for bound in (lo, hi))
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"clip: lo={lo} is greater than hi={hi}")
    return Clip(lo, hi)(x)


def maximum(a, b):
    return Maximum()(*operands(a, b, "maximum"))


def where(condition, a, b):
    """Elementwise ``a`` where ``condition`` holds, else ``b`` (broadcasting)."""
    condition = data_of(condition)
    if condition.dtype != bool:
        raise TypeError(f"where: condition must be boolean, got dtype {condition.dtype}")
    a, b = operands(a, b, "where")
    try:
        np.broadcast_shapes(condition.shape, a.shape, b.shape)
    except ValueError:
        raise ShapeError(f"where: shapes {condition.shape}, {a.shape} and {b.shape} do not "
                         "broadcast together") from None
    return Where(condition)(a, b)
