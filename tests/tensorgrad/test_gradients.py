"""Every function of ``tensorgrad.functions`` and every Variable operator, checked against
NumPy in the forward pass and against central differences (``tg.gradcheck``, float64) in
the backward pass, over shapes and values drawn by hypothesis: broadcast shapes, 0-d and
1-d operands included. Second derivatives (``tg.gradgradcheck``) for the smooth functions.

Values are drawn away from the points where a function is not differentiable (relu at 0,
clip at its bounds, ties of max and maximum), so that central differences are meaningful.
"""

import math
import operator
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorgrad as tg
import tensorgrad.functions as F
from tensorgrad.functions.neural import add_rows

FEW = settings(max_examples=15, deadline=None)
FEWER = settings(max_examples=8, deadline=None)  # for gradgradcheck, which is slower

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)
pairs_of_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


def floats(lo=-2.0, hi=2.0, away_from=()):
    """Floats in [lo, hi], at least 0.1 from each point of ``away_from``."""
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    if away_from:
        elements = elements.filter(lambda v: all(abs(v - p) > 0.1 for p in away_from))
    return elements


def arrays(shape, **bounds):
    return hnp.arrays(np.float64, shape, elements=floats(**bounds))


def distinct(shape):
    """float64 arrays whose elements are at least 0.3 apart (a maximum is never tied)."""
    size = math.prod(shape)
    spread = st.permutations(range(size)).map(lambda p: 0.5 * np.array(p, dtype=np.float64) - size / 4)
    return st.tuples(spread, arrays(shape, lo=-0.1, hi=0.1)).map(lambda t: t[0].reshape(shape) + t[1])


def on_grid(shape, offset):
    """Arrays of k + offset for integers k: arrays with offsets 0 and 0.5 never tie."""
    return hnp.arrays(np.float64, shape, elements=st.integers(-3, 3).map(lambda k: k + offset))


@st.composite
def axes(draw, ndim):
    """An ``axis`` argument for an array of ``ndim`` dimensions: None, an int or a tuple."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    one = st.integers(-ndim, ndim - 1)
    several = st.lists(one, max_size=ndim, unique_by=lambda a: a % ndim).map(tuple)
    return draw(st.none() | one | several)


def variables(*arrays):
    """float64 Variables named a, b, c, ... (gradcheck names them when they fail)."""
    return [tg.Variable(np.asarray(a, dtype=np.float64), name="abcdefgh"[i]) for i, a in enumerate(arrays)]


def check(fn, *arrays, second=False, **tolerances):
    xs = variables(*arrays)
    assert tg.gradcheck(fn, *xs, **tolerances)
    if second:
        assert tg.gradgradcheck(fn, *xs, **tolerances)


# ------------------------------------------------------------------------- elementwise
def sigmoid_reference(x):
    return 1 / (1 + np.exp(-x))


UNARY = {  # name: (function, NumPy reference, value bounds)
    "exp": (F.exp, np.exp, {}),
    "log": (F.log, np.log, {"lo": 0.2, "hi": 3.0}),
    "sqrt": (F.sqrt, np.sqrt, {"lo": 0.2, "hi": 3.0}),
    "tanh": (F.tanh, np.tanh, {}),
    "sigmoid": (F.sigmoid, sigmoid_reference, {"lo": -4.0, "hi": 4.0}),
    "neg": (F.neg, np.negative, {}),
    "relu": (F.relu, lambda x: np.maximum(x, 0), {"away_from": (0.0,)}),
}


@pytest.mark.parametrize("name", UNARY)
@FEW
@given(data=st.data())
def test_unary(name, data):
    fn, reference, bounds = UNARY[name]
    x = data.draw(arrays(data.draw(shapes), **bounds))
    np.testing.assert_allclose(fn(tg.Variable(x)).data, reference(x), rtol=1e-12)
    check(fn, x)


@pytest.mark.parametrize("name", UNARY)  # relu too: its second derivative is 0 away from the kink
@FEWER
@given(data=st.data())
def test_unary_second_derivative(name, data):
    fn, _, bounds = UNARY[name]
    x = data.draw(arrays(data.draw(shapes), **bounds))
    assert tg.gradgradcheck(fn, tg.Variable(x))


BINARY = {  # name: (function, NumPy reference, bounds of a, bounds of b)
    "add": (F.add, np.add, {}, {}),
    "sub": (F.sub, np.subtract, {}, {}),
    "mul": (F.mul, np.multiply, {}, {}),
    "div": (F.div, np.divide, {}, {"lo": 0.5, "hi": 2.0}),
    "pow": (F.pow, np.power, {"lo": 0.5, "hi": 2.0}, {}),
}


@pytest.mark.parametrize("name", BINARY)
@FEW
@given(data=st.data(), shapes=pairs_of_shapes)
def test_binary(name, data, shapes):
    fn, reference, bounds_a, bounds_b = BINARY[name]
    a = data.draw(arrays(shapes.input_shapes[0], **bounds_a))
    b = data.draw(arrays(shapes.input_shapes[1], **bounds_b))
    y = fn(tg.Variable(a), tg.Variable(b))
    assert y.shape == shapes.result_shape
    np.testing.assert_allclose(y.data, reference(a, b), rtol=1e-12)
    check(fn, a, b)


@pytest.mark.parametrize("name", ["mul", "div", "pow"])
@FEWER
@given(data=st.data(), shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
def test_binary_second_derivative(name, data, shapes):
    fn, _, bounds_a, bounds_b = BINARY[name]
    a = data.draw(arrays(shapes.input_shapes[0], **bounds_a))
    b = data.draw(arrays(shapes.input_shapes[1], **bounds_b))
    check(fn, a, b, second=True)


@FEW
@given(data=st.data(), shapes=pairs_of_shapes)
def test_maximum(data, shapes):
    a = data.draw(on_grid(shapes.input_shapes[0], 0.0))
    b = data.draw(on_grid(shapes.input_shapes[1], 0.5))
    np.testing.assert_array_equal(F.maximum(tg.Variable(a), tg.Variable(b)).data, np.maximum(a, b))
    check(F.maximum, a, b)


@FEW
@given(data=st.data(), shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                                max_side=3))
def test_where(data, shapes):
    shape_c, shape_a, shape_b = shapes.input_shapes
    condition = data.draw(hnp.arrays(bool, shape_c))
    a, b = data.draw(arrays(shape_a)), data.draw(arrays(shape_b))
    np.testing.assert_array_equal(F.where(condition, tg.Variable(a), tg.Variable(b)).data,
                                  np.where(condition, a, b))
    check(lambda a, b: F.where(condition, a, b), a, b)


@FEW
@given(data=st.data(), shape=shapes, bounds=st.sampled_from([(-1.0, 1.0), (-0.5, None), (None, 0.5)]))
def test_clip(data, shape, bounds):
    lo, hi = bounds
    x = data.draw(arrays(shape, away_from=[b for b in bounds if b is not None]))
    np.testing.assert_array_equal(F.clip(tg.Variable(x), lo, hi).data, np.clip(x, lo, hi))
    check(lambda x: F.clip(x, lo, hi), x)


@FEW
@given(data=st.data(), shape=shapes)
def test_astype(data, shape):
    x = data.draw(arrays(shape))
    y = F.astype(tg.Variable(x), np.float32)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, x.astype(np.float32))
    # float32 rounding makes small steps useless; the function is linear, so large ones are exact.
    check(lambda x: F.astype(x, np.float32), x, eps=1e-2, atol=1e-4)
    v = tg.Variable(x)
    assert F.astype(v, np.float64) is v


# ------------------------------------------------------------------------- matrix products
@st.composite
def matmul_shapes(draw):
    """Shapes of a and b for a @ b: 1-d operands and broadcast batch axes included."""
    n, k, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2,
                                                               max_side=2)).input_shapes
    shape_a = (k,) if draw(st.booleans()) else batch_a + (n, k)
    shape_b = (k,) if draw(st.booleans()) else batch_b + (k, m)
    return shape_a, shape_b


@FEW
@given(data=st.data(), shapes=matmul_shapes())
def test_matmul(data, shapes):
    a, b = data.draw(arrays(shapes[0])), data.draw(arrays(shapes[1]))
    np.testing.assert_allclose(F.matmul(tg.Variable(a), tg.Variable(b)).data, a @ b, rtol=1e-12)
    check(F.matmul, a, b)


@FEWER
@given(data=st.data(), shapes=matmul_shapes())
def test_matmul_second_derivative(data, shapes):
    a, b = data.draw(arrays(shapes[0])), data.draw(arrays(shapes[1]))
    assert tg.gradgradcheck(F.matmul, *variables(a, b))


@FEW
@given(data=st.data(), lead=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       sizes=st.tuples(st.integers(1, 3), st.integers(1, 3)), bias=st.booleans())
def test_linear(data, lead, sizes, bias):
    n_in, n_out = sizes
    x, W = data.draw(arrays(lead + (n_in,))), data.draw(arrays((n_out, n_in)))
    if bias:
        b = data.draw(arrays((n_out,)))
        np.testing.assert_allclose(F.linear(*variables(x, W, b)).data, x @ W.T + b, rtol=1e-12)
        check(F.linear, x, W, b)
    else:
        np.testing.assert_allclose(F.linear(*variables(x, W)).data, x @ W.T, rtol=1e-12)
        check(F.linear, x, W)


# ------------------------------------------------------------------------- reductions
REDUCTIONS = {
    "sum": (F.sum, np.sum),
    "mean": (F.mean, np.mean),
    "logsumexp": (F.logsumexp, lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis, keepdims=keepdims))),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@FEW
@given(data=st.data(), shape=shapes, keepdims=st.booleans())
def test_reduction(name, data, shape, keepdims):
    fn, reference = REDUCTIONS[name]
    x = data.draw(arrays(shape))
    axis = data.draw(axes(len(shape)))
    y = fn(tg.Variable(x), axis, keepdims)
    np.testing.assert_allclose(y.data, reference(x, axis=axis, keepdims=keepdims), rtol=1e-12, atol=1e-12)
    check(lambda x: fn(x, axis, keepdims), x)


@FEW
@given(data=st.data(), shape=shapes, keepdims=st.booleans())
def test_max(data, shape, keepdims):
    x = data.draw(distinct(shape))
    axis = data.draw(axes(len(shape)))
    np.testing.assert_array_equal(F.max(tg.Variable(x), axis, keepdims).data,
                                  np.max(x, axis=axis, keepdims=keepdims))
    check(lambda x: F.max(x, axis, keepdims), x)


@FEWER
@given(data=st.data(), shape=shapes, keepdims=st.booleans())
def test_logsumexp_second_derivative(data, shape, keepdims):
    x = data.draw(arrays(shape))
    axis = data.draw(axes(len(shape)))
    assert tg.gradgradcheck(lambda x: F.logsumexp(x, axis, keepdims), tg.Variable(x))


def softmax_reference(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


NORMALISATIONS = {
    "softmax": (F.softmax, softmax_reference),
    "log_softmax": (F.log_softmax, lambda x, axis: np.log(softmax_reference(x, axis))),
}


@pytest.mark.parametrize("name", NORMALISATIONS)
@FEW
@given(data=st.data(), shape=nonscalar_shapes)
def test_normalisation(name, data, shape):
    fn, reference = NORMALISATIONS[name]
    x = data.draw(arrays(shape, lo=-5.0, hi=5.0))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    np.testing.assert_allclose(fn(tg.Variable(x), axis).data, reference(x, axis), rtol=1e-10, atol=1e-14)
    check(lambda x: fn(x, axis), x)


@pytest.mark.parametrize("name", NORMALISATIONS)
@FEWER
@given(data=st.data(), shape=nonscalar_shapes)
def test_normalisation_second_derivative(name, data, shape):
    fn, _ = NORMALISATIONS[name]
    x = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert tg.gradgradcheck(lambda x: fn(x, axis), tg.Variable(x))


# ------------------------------------------------------------------------- shapes
@FEW
@given(data=st.data(), shape=shapes)
def test_reshape(data, shape):
    x = data.draw(arrays(shape))
    targets = [(-1,), (x.size,), (1, x.size), (x.size, -1, 1), shape[::-1]]
    if shape:
        targets.append((-1, shape[-1]))
    if x.size == 1:
        targets.append(())
    target = data.draw(st.sampled_from(targets))
    np.testing.assert_array_equal(F.reshape(tg.Variable(x), target).data, x.reshape(target))
    check(lambda x: F.reshape(x, target), x)


@FEW
@given(data=st.data(), shape=shapes)
def test_transpose(data, shape):
    x = data.draw(arrays(shape))
    ndim = len(shape)
    permutation = data.draw(st.none() | st.permutations(range(ndim)))
    if permutation is not None:  # negative axes count from the end, as in NumPy
        permutation = tuple(a - ndim if data.draw(st.booleans()) else a for a in permutation)
    np.testing.assert_array_equal(F.transpose(tg.Variable(x), permutation).data,
                                  np.transpose(x, permutation))
    check(lambda x: F.transpose(x, permutation), x)


@FEW
@given(data=st.data(), shape=shapes)
def test_broadcast_to_and_sum_to(data, shape):
    other = data.draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=3, max_side=3))
    target = np.broadcast_shapes(shape, other)
    x = data.draw(arrays(shape))
    np.testing.assert_array_equal(F.broadcast_to(tg.Variable(x), target).data, np.broadcast_to(x, target))
    check(lambda x: F.broadcast_to(x, target), x)
    y = data.draw(arrays(target))
    summed = F.sum_to(tg.Variable(y), shape)
    assert summed.shape == shape
    lead = len(target) - len(shape)
    stretched = tuple(lead + i for i, n in enumerate(shape) if n == 1 and target[lead + i] != 1)
    expected = y.sum(axis=tuple(range(lead)) + stretched, keepdims=True).reshape(shape)
    np.testing.assert_allclose(summed.data, expected, rtol=1e-12)
    check(lambda y: F.sum_to(y, shape), y)


@st.composite
def basic_indices(draw, shape):
    """A tuple of ints, slices (negative steps included), None and Ellipsis for ``shape``."""
    parts = []
    for n in shape:
        part = draw(st.one_of(st.integers(-n, n - 1),
                              st.builds(slice, st.none() | st.integers(-n, n), st.none() | st.integers(-n, n),
                                        st.sampled_from([None, 1, 2, -1]))))
        parts.append(part)
    if parts and draw(st.booleans()):
        parts[draw(st.integers(0, len(parts) - 1))] = Ellipsis
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    return tuple(parts)


@FEW
@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_basic(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(basic_indices(shape))
    np.testing.assert_array_equal(F.getitem(tg.Variable(x), index).data, x[index])
    check(lambda x: F.getitem(x, index), x)


@st.composite
def integer_indices(draw, shape):
    """Integer-array indices with repeats, on the first axis or mixed with a slice."""
    n = shape[0]
    ids = np.array(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6)))
    if draw(st.booleans()):
        ids = ids.reshape(1, -1) if draw(st.booleans()) else ids
        return ids
    if len(shape) > 1:
        m = shape[1]
        other = np.array(draw(st.lists(st.integers(0, m - 1), min_size=len(ids), max_size=len(ids))))
        return (ids, other) if draw(st.booleans()) else (slice(None), other)
    return (ids,)


@FEW
@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_integer_arrays(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(integer_indices(shape))
    np.testing.assert_array_equal(F.getitem(tg.Variable(x), index).data, x[index])
    check(lambda x: F.getitem(x, index), x)


@FEWER
@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_second_derivative(data, shape):
    # tanh makes the second derivative non-zero, so the scatter's own backward is exercised.
    x = data.draw(arrays(shape))
    index = data.draw(integer_indices(shape) | basic_indices(shape))
    assert tg.gradgradcheck(lambda x: F.tanh(F.getitem(x, index)), tg.Variable(x))


def test_getitem_repeated_indices_accumulate():
    x = tg.Variable(np.arange(4.0))
    (x[[0, 0, 2, 0]] * np.array([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1011.0, 0.0, 100.0, 0.0])


@FEW
@given(data=st.data(), shape=nonscalar_shapes, count=st.integers(1, 3))
def test_concat(data, shape, count):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    pieces = []
    for _ in range(count):
        piece_shape = list(shape)
        piece_shape[axis] = data.draw(st.integers(1, 3))
        pieces.append(data.draw(arrays(tuple(piece_shape))))
    np.testing.assert_array_equal(F.concat(variables(*pieces), axis).data, np.concatenate(pieces, axis))
    check(lambda *xs: F.concat(xs, axis), *pieces)


@FEW
@given(data=st.data(), shape=shapes, count=st.integers(1, 3))
def test_stack(data, shape, count):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    pieces = [data.draw(arrays(shape)) for _ in range(count)]
    np.testing.assert_array_equal(F.stack(variables(*pieces), axis).data, np.stack(pieces, axis))
    check(lambda *xs: F.stack(xs, axis), *pieces)


@FEW
@given(data=st.data(), shape=nonscalar_shapes)
def test_split(data, shape):
    x = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    sections = data.draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0])
                         | st.lists(st.integers(0, n), max_size=3).map(sorted))
    expected = np.split(x, sections, axis)
    pieces = F.split(tg.Variable(x), sections, axis)
    assert len(pieces) == len(expected)
    for piece, reference in zip(pieces, expected, strict=True):
        np.testing.assert_array_equal(piece.data, reference)
    check(lambda x: F.split(x, sections, axis), x)
    # Only the first piece used: the gradient of the others is zero.
    check(lambda x: F.split(x, sections, axis)[0], x)


# ------------------------------------------------------------------------- neural
@st.composite
def embedding_case(draw):
    n, dim = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    weight = draw(arrays((n, dim)))
    ids = draw(hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
                          elements=st.integers(0, n - 1)))
    return weight, ids


@FEW
@given(case=embedding_case())
def test_embedding(case):
    weight, ids = case
    np.testing.assert_array_equal(F.embedding(ids, tg.Variable(weight)).data, weight[ids])
    check(lambda w: F.embedding(ids, w), weight)


@FEWER
@given(case=embedding_case())
def test_embedding_second_derivative(case):
    weight, ids = case
    assert tg.gradgradcheck(lambda w: F.tanh(F.embedding(ids, w)), tg.Variable(weight))


@FEW
@given(case=embedding_case(), data=st.data())
def test_embedding_padding_idx(case, data):
    weight, ids = case
    padding_idx = data.draw(st.integers(-len(weight), len(weight) - 1))
    gy = data.draw(arrays(ids.shape + weight.shape[1:]))
    w = tg.Variable(weight)
    (padded,) = tg.grad(F.embedding(ids, w, padding_idx), w, tg.Variable(gy))
    expected = np.zeros_like(weight)
    np.add.at(expected, ids.reshape(-1), gy.reshape(-1, weight.shape[1]))
    expected[padding_idx] = 0  # the padding row receives no gradient, as in PyTorch
    np.testing.assert_allclose(padded.data, expected, rtol=1e-12)
    # The scatter (embedding's backward) is itself differentiable, padding row included.
    check(lambda g: F.EmbeddingGrad(ids, weight.shape, padding_idx % len(weight))(g), gy)


@FEW
@given(data=st.data(), shape=shapes, p=st.sampled_from([0.2, 0.5, 0.8]))
def test_dropout_gradient_is_the_mask(data, shape, p):
    x = data.draw(arrays(shape, lo=0.5, hi=2.0))
    tg.manual_seed(7)
    v = tg.Variable(x)
    y = F.dropout(v, p)
    mask = y.data / x
    assert np.all((mask == 0) | np.isclose(mask, 1 / (1 - p), rtol=1e-12))
    gy = data.draw(arrays(shape))
    y.backward(gy)
    np.testing.assert_allclose(v.grad.data, gy * mask, rtol=1e-12)

    def reseeded(x):  # the same mask at every evaluation, so central differences apply
        tg.manual_seed(7)
        return F.dropout(x, p)

    check(reseeded, x)


def test_dropout_identities():
    x = tg.Variable(np.ones((3, 4)))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.data, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, 0.0)


# ------------------------------------------------------------------------- Variable operators
OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
             "**": operator.pow}
# bounds of the left and right operand: positive bases for **, denominators away from 0
OPERAND_BOUNDS = {"/": ({}, {"lo": 0.5, "hi": 2.0}), "**": ({"lo": 0.5, "hi": 2.0}, {})}


@pytest.mark.parametrize("symbol", OPERATORS)
@FEW
@given(data=st.data(), shapes=pairs_of_shapes, form=st.sampled_from(["variables", "array", "scalar"]),
       variable_left=st.booleans())
def test_binary_operator(symbol, data, shapes, form, variable_left):
    """``x op y`` with Variables on both sides, or an ndarray or Python scalar on either side."""
    op = OPERATORS[symbol]
    bounds_left, bounds_right = OPERAND_BOUNDS.get(symbol, ({}, {}))
    left = data.draw(arrays(shapes.input_shapes[0], **bounds_left))
    right = data.draw(arrays(shapes.input_shapes[1], **bounds_right))
    if form == "variables":
        result = op(*variables(left, right))
        np.testing.assert_allclose(result.data, op(left, right), rtol=1e-12)
        check(op, left, right)
        return
    if form == "scalar":  # a Python float on the constant side
        left, right = (left, float(right.flat[0])) if variable_left else (float(left.flat[0]), right)
    if variable_left:
        constant = right

        def fn(x):
            return op(x, constant)
        varying = left
    else:
        constant = left

        def fn(x):
            return op(constant, x)
        varying = right
    result = fn(tg.Variable(varying))
    assert isinstance(result, tg.Variable)
    np.testing.assert_allclose(result.data, op(left, right), rtol=1e-12)
    check(fn, varying)


@FEW
@given(data=st.data(), shapes=matmul_shapes(),
       form=st.sampled_from(["variables", "array-left", "array-right"]))
def test_matmul_operator(data, shapes, form):
    a, b = data.draw(arrays(shapes[0])), data.draw(arrays(shapes[1]))
    if form == "variables":
        check(operator.matmul, a, b)
        result = operator.matmul(*variables(a, b))
    elif form == "array-left":
        check(lambda b_: a @ b_, b)
        result = a @ tg.Variable(b)
    else:
        check(lambda a_: a_ @ b, a)
        result = tg.Variable(a) @ b
    assert isinstance(result, tg.Variable)
    np.testing.assert_allclose(result.data, a @ b, rtol=1e-12)


@FEW
@given(data=st.data(), shape=shapes)
def test_unary_minus(data, shape):
    x = data.draw(arrays(shape))
    np.testing.assert_array_equal((-tg.Variable(x)).data, -x)
    check(operator.neg, x)


@FEW
@given(data=st.data(), shape=nonscalar_shapes)
def test_shape_methods(data, shape):
    x = data.draw(arrays(shape))
    permutation = data.draw(st.permutations(range(len(shape))))
    v = tg.Variable(x)
    np.testing.assert_array_equal(v.T.data, x.T)
    np.testing.assert_array_equal(v.reshape(-1).data, x.reshape(-1))
    np.testing.assert_array_equal(v.reshape((1, -1)).data, x.reshape(1, -1))
    np.testing.assert_array_equal(v.transpose(*permutation).data, x.transpose(*permutation))
    np.testing.assert_array_equal(v.transpose(permutation).data, x.transpose(permutation))
    check(lambda v: v.T, x)
    check(lambda v: v.reshape(1, -1), x)
    check(lambda v: v.transpose(*permutation), x)
    check(lambda v: v.transpose(), x)


@pytest.mark.parametrize("method", ["sum", "mean", "max"])
@FEW
@given(data=st.data(), shape=shapes, keepdims=st.booleans())
def test_reduction_methods(method, data, shape, keepdims):
    x = data.draw(distinct(shape))
    axis = data.draw(axes(len(shape)))
    result = getattr(tg.Variable(x), method)(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(result.data, getattr(x, method)(axis=axis, keepdims=keepdims), rtol=1e-12)
    check(lambda v: getattr(v, method)(axis=axis, keepdims=keepdims), x)
    check(lambda v: getattr(v, method)(), x)


@FEW
@given(data=st.data(), shape=nonscalar_shapes)
def test_indexing_operator(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(basic_indices(shape) | integer_indices(shape))
    np.testing.assert_array_equal(tg.Variable(x)[index].data, x[index])
    check(lambda v: v[index], x)
    ids = data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=5))
    np.testing.assert_array_equal(tg.Variable(x)[ids].data, x[ids])  # a list indexes like an array
    check(lambda v: v[ids], x)


def test_unbind_is_the_inverse_of_stack():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 2))
    for axis in (0, 1, -1):
        pieces = F.unbind(tg.Variable(x), axis)
        assert len(pieces) == x.shape[axis]
        np.testing.assert_array_equal(F.stack(pieces, axis).data, x)
        assert tg.gradcheck(lambda v, axis=axis: F.unbind(v, axis)[1] * 2.0, x)
        assert tg.gradgradcheck(lambda v, axis=axis: F.tanh(F.unbind(v, axis)[0]), x)


def test_add_rows_equals_add_at():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 6, 40)
    rows = rng.standard_normal((40, 3))
    expected = np.zeros((7, 3))
    np.add.at(expected, ids, rows)
    np.testing.assert_allclose(add_rows(ids, rows, 7), expected, rtol=1e-12)
    assert add_rows(ids[:0], rows[:0], 7).shape == (7, 3)


@pytest.mark.parametrize("dtype, far", [(np.float32, -20.0), (np.float64, -40.0)])
def test_sigmoid_keeps_full_relative_precision_on_both_sides(dtype, far):
    x = np.concatenate([np.linspace(-100, 100, 401), [-1e4, 1e4, far]]).astype(dtype)
    exact = np.array([1 / (1 + math.exp(-v)) if v > -700 else 0.0 for v in x.astype(np.float64)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp, no division by zero
        y = F.sigmoid(tg.Variable(x)).data
        v = tg.Variable(np.array([far], dtype))
        log_p = F.log(F.sigmoid(v))
        log_p.backward()
    representable = exact >= np.finfo(dtype).tiny
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(y[representable], exact[representable], rtol=4 * eps)
    assert y.dtype == dtype
    np.testing.assert_allclose(log_p.data, [far], rtol=4 * eps)  # log σ(x) = x - log(1 + eˣ) ≈ x
    np.testing.assert_allclose(v.grad.data, [1 - exact[-1]], rtol=4 * eps)
