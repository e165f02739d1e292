"""Small helpers shared by the primitive Functions."""

import numpy as np

from tensorgrad.variable import Variable, as_variable


def result_dtype(*arrays):
    """The dtype NumPy gives an operation on ``arrays``; the common case (all alike) without
    NumPy's promotion call, which costs a microsecond at every time step of a sequence."""
    first = arrays[0].dtype
    for a in arrays:
        if a.dtype != first:
            return np.result_type(*arrays)
    return first


def one(dtype):
    """The number 1 as a read-only 0-d array of ``dtype``, for the 1 of 1 - x and 1 + x.

    NumPy turns a Python scalar operand into an array at every call, which costs about as much
    as the operation itself on a (32, 64) array (0.3-0.5 µs); a 0-d array of the other
    operand's dtype it takes as it is. The result is the same, bit for bit."""
    unit = _ONES.get(dtype)
    if unit is None:
        unit = _ONES[dtype] = np.ones((), dtype)
        unit.flags.writeable = False
    return unit


_ONES = {}  # dtype -> its one


def sum_to_shape(array, shape):
    """Sum ``array`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if array.shape == shape:
        return array
    lead = array.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and array.shape[lead + i] != 1)
    summed = array.sum(axis=axes, keepdims=True)
    return summed.reshape(shape) if lead else summed


def normalize_axis(axis, ndim, op):
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes, checked."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    result = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(f"{op}: axis {a} is out of range for an array of "
                                          f"{ndim} dimensions")
        result.append(a % ndim)
    return tuple(sorted(set(result)))


def keepdims_shape(shape, axes):
    """``shape`` with the reduced ``axes`` kept as length 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def operands(x0, x1, op):
    """Both operands of the binary op ``op`` as Variables; a scalar takes the other one's dtype,
    and so does an integer or boolean operand next to a floating one (as in PyTorch: int64 and
    float32 give float32, where NumPy would promote to float64)."""
    try:
        if not isinstance(x0, Variable):
            x0 = as_variable(x0, like=x1 if isinstance(x1, Variable) else None)
        if not isinstance(x1, Variable):
            x1 = as_variable(x1, like=x0)
    except TypeError as error:  # None, a string: named as the operation's
        raise TypeError(f"{op}: {error}") from None
    dtype0, dtype1 = x0.data.dtype, x1.data.dtype
    if dtype0 != dtype1:
        if dtype0.kind == "f" and dtype1.kind in "biu":
            x1 = _cast(x1, dtype0)
        elif dtype1.kind == "f" and dtype0.kind in "biu":
            x0 = _cast(x0, dtype1)
    return x0, x1


def _cast(x, dtype):
    """``x`` cast by the recorded AsType (so that ``tg.jit`` replays the cast of each call's array)."""
    from tensorgrad.functions.arithmetic import astype  # here: arithmetic imports this module
    return astype(x, dtype)
