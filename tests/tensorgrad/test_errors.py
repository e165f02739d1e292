"""Bad input gets a clear error naming the operation and the shapes or values at fault."""

import re
import traceback

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.functions as F


def ones(*shape):
    return tg.Variable(np.ones(shape))


def test_matmul_misaligned():
    with pytest.raises(tg.ShapeError, match=re.escape("matmul: shapes (4, 5) and (2, 3) are not aligned")):
        ones(4, 5) @ ones(2, 3)
    with pytest.raises(tg.ShapeError, match=re.escape("matmul: shapes (3,) and (2, 3) are not aligned")):
        ones(3) @ ones(2, 3)
    with pytest.raises(tg.ShapeError, match=r"matmul: operands must have at least one dimension, got "
                                            r"shapes \(\) and \(2,\)"):
        ones() @ ones(2)
    with pytest.raises(ValueError, match=r"^matmul: .*\(input shapes \(2, 3, 4\), \(3, 4, 5\)\)"):
        ones(2, 3, 4) @ ones(3, 4, 5)  # batch axes that do not broadcast


@pytest.mark.parametrize("data, message", [
    ("abc", "Variable: data must be numeric, got str"),
    (None, "Variable: data must be numeric, got NoneType"),
    (np.array([1, "a"], dtype=object), "Variable: data must be numeric, got ndarray of dtype object"),
    (np.ones(2, dtype=complex), "Variable: data must be numeric, got ndarray of dtype complex128"),
    ([[1.0, 2.0], [3.0]], "Variable: data is not a rectangular numeric array"),
])
def test_non_numeric_data(data, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        tg.Variable(data)


def test_variable_of_a_variable():
    with pytest.raises(TypeError, match=r"Variable: data is already a Variable; use \.detach\(\)"):
        tg.Variable(ones(2))


def test_numeric_operand_required():
    with pytest.raises(TypeError, match="expected numeric data, got str"):
        ones(2) + "a"


def test_backward_errors():
    with pytest.raises(RuntimeError, match=re.escape("backward: output of shape (2, 3) is not a scalar; "
                                                     "pass grad= with that shape")):
        (ones(2, 3) * 2).backward()
    constant = tg.Variable(np.ones(2), requires_grad=False)
    with pytest.raises(RuntimeError, match="backward: this Variable does not require a gradient"):
        (constant * 2).sum().backward()
    with pytest.raises(ValueError, match=re.escape("backward: grad has shape (3,), but the output has "
                                                   "shape (2, 3)")):
        (ones(2, 3) * 2).backward(np.ones(3))


def test_grad_errors():
    x = ones(3)
    with pytest.raises(RuntimeError, match=re.escape("grad: output of shape (3,) is not a scalar")):
        tg.grad(x * 2, x)
    with pytest.raises(ValueError, match="grad: 1 outputs but 2 grad_outputs"):
        tg.grad([x.sum()], [x], [None, None])
    with pytest.raises(ValueError, match=re.escape("grad: grad_output of shape (2,) for an output of "
                                                   "shape (3,)")):
        tg.grad(x * 2, x, ones(2))
    with pytest.raises(RuntimeError, match=re.escape("grad: an output of shape (3,) does not require")):
        tg.grad(tg.Variable(np.ones(3), requires_grad=False), x, ones(3))


def test_bad_reshape():
    with pytest.raises(tg.ShapeError, match=re.escape("reshape: cannot reshape an array of shape (2, 3) "
                                                      "(6 elements) into shape (4,)")):
        ones(2, 3).reshape(4)


@pytest.mark.parametrize("call, message", [
    (lambda x: x.sum(axis=2), "sum: axis 2 is out of range for an array of 2 dimensions"),
    (lambda x: x.mean(axis=(0, -3)), "mean: axis -3 is out of range for an array of 2 dimensions"),
    (lambda x: x.max(axis=5), "max: axis 5 is out of range"),
    (lambda x: F.logsumexp(x, axis=2), "logsumexp: axis 2 is out of range"),
    (lambda x: F.softmax(x, axis=-3), "softmax: axis -3 is out of range for an array of 2 dimensions"),
    (lambda x: F.log_softmax(x, axis=2), "log_softmax: axis 2 is out of range"),
])
def test_bad_axis(call, message):
    with pytest.raises(np.exceptions.AxisError, match=re.escape(message)):
        call(ones(2, 3))


@pytest.mark.parametrize("axes", [(0, 0), (0, 1, 2), (0, 2), (0, -3)])
def test_bad_transpose(axes):
    with pytest.raises(tg.ShapeError, match=re.escape(f"transpose: axes {axes} are not a permutation "
                                                      "for shape (2, 3)")):
        ones(2, 3).transpose(*axes)


@pytest.mark.parametrize("index, message", [
    (5, "getitem: index 5 is out of bounds for axis 0 with size 3 (input shapes (3,))"),
    ([0, -4], "getitem: index -4 is out of bounds for axis 0 with size 3"),
    ((0, 0), "getitem: too many indices for array"),
])
def test_getitem_out_of_range(index, message):
    with pytest.raises(IndexError, match=re.escape(message)):
        ones(3)[index]


def test_embedding_errors():
    weight = ones(5, 2)
    with pytest.raises(IndexError, match="embedding: index 7 is out of range for 5 embeddings"):
        F.embedding(np.array([[1, 7]]), weight)
    with pytest.raises(IndexError, match="embedding: index -1 is out of range for 5 embeddings"):
        F.embedding(np.array([-1]), weight)
    with pytest.raises(IndexError, match="embedding: padding_idx 5 is out of range for 5 embeddings"):
        F.embedding(np.array([1]), weight, padding_idx=5)
    with pytest.raises(TypeError, match="embedding: indices must be integers, got dtype float64"):
        F.embedding(np.array([1.0]), weight)
    with pytest.raises(tg.ShapeError, match=re.escape("embedding: weight must be 2-d (num_embeddings, dim), "
                                                      "got (5,)")):
        F.embedding(np.array([1]), ones(5))


def test_broadcasting_errors():
    with pytest.raises(ValueError, match=r"^add: .*\(input shapes \(2, 3\), \(4,\)\)"):
        ones(2, 3) + ones(4)
    with pytest.raises(ValueError, match=r"^mul: .*\(input shapes \(2, 3\), \(3, 2\)\)"):
        ones(2, 3) * np.ones((3, 2))
    with pytest.raises(tg.ShapeError, match=re.escape("broadcast_to: shape (2, 3) cannot be broadcast to "
                                                      "(3, 3)")):
        F.broadcast_to(ones(2, 3), (3, 3))
    for shape, target in [((2, 3), (4,)), ((1, 3), (2, 3)), ((3,), (2, 3))]:
        with pytest.raises(tg.ShapeError, match=re.escape(f"sum_to: shape {shape} does not broadcast "
                                                          f"from {target}")):
            F.sum_to(ones(*shape), target)
    with pytest.raises(tg.ShapeError, match=re.escape("where: shapes (2,), (3,) and (2,) do not broadcast")):
        F.where(np.ones(2, bool), ones(3), ones(2))


def test_joining_and_splitting_errors():
    with pytest.raises(tg.ShapeError, match=re.escape("stack: inputs must share one shape, got "
                                                      "[(2,), (3,)]")):
        F.stack([ones(2), ones(3)])
    with pytest.raises(ValueError, match="stack: needs at least one input"):
        F.stack([])
    with pytest.raises(ValueError, match="concat: needs at least one input"):
        F.concat([])
    with pytest.raises(ValueError, match=r"^concat: .*\(input shapes \(2, 3\), \(2, 4\)\)"):
        F.concat([ones(2, 3), ones(2, 4)])
    with pytest.raises(ValueError, match=re.escape("split: array split does not result in an equal "
                                                   "division (input shapes (5,))")):
        F.split(ones(5), 2)


def test_argument_errors():
    with pytest.raises(TypeError, match="where: condition must be boolean, got dtype float64"):
        F.where(np.ones(2), ones(2), ones(2))
    with pytest.raises(ValueError, match="clip: give at least one of lo and hi"):
        F.clip(ones(2))
    with pytest.raises(ValueError, match="clip: lo=1.0 is greater than hi=0.0"):
        F.clip(ones(2), 1, 0)
    with pytest.raises(ValueError, match=re.escape("dropout: p must be in [0, 1], got 1.5")):
        F.dropout(ones(2), 1.5)
    with pytest.raises(tg.ShapeError, match=re.escape("linear: input of shape (2, 3) does not fit a weight "
                                                      "of shape (4, 2) (expected (..., 2))")):
        F.linear(ones(2, 3), ones(4, 2))
    with pytest.raises(tg.ShapeError, match=re.escape("linear: bias of shape (3,) does not fit a weight of "
                                                      "shape (4, 3)")):
        F.linear(ones(2, 3), ones(4, 3), ones(3))
    with pytest.raises(ValueError, match=re.escape("max: axis 0 to reduce over is empty, in shape (0,) "
                                                   "(input shapes (0,))")):
        F.max(ones(0))
    assert F.max(ones(0, 3), axis=1).shape == (0,)  # other axes reduced: the maximum of each of no rows
    np.testing.assert_array_equal(F.logsumexp(ones(2, 0), axis=1).data, [-np.inf, -np.inf])  # as PyTorch
    with pytest.raises(TypeError, match=re.escape("softmax: axis must be one int, got (0, 1)")):
        F.softmax(ones(2, 3), axis=(0, 1))
    with pytest.raises(TypeError, match=re.escape("log_softmax: axis must be one int, got (0, 1)")):
        F.log_softmax(ones(2, 3), axis=(0, 1))
    with pytest.raises(tg.ShapeError, match=re.escape("split: axis 7 is out of range for shape (2, 3)")):
        F.split(ones(2, 3), 2, axis=7)
    with pytest.raises(TypeError, match="add: expected numeric data, got NoneType"):
        ones(2) + None
    with pytest.raises(TypeError, match="mul: expected numeric data, got str"):
        "a" * ones(2)
    with pytest.raises(TypeError, match="register_hook: expected a callable, got int"):
        ones(2).register_hook(3)


def test_badly_written_functions():
    class NoForward(tg.Function):
        pass

    class TooManyGradients(tg.Function):
        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return gy, gy

    class WrongShape(tg.Function):
        op = "wrong_shape"

        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return gy.sum()

    with pytest.raises(NotImplementedError, match="NoForward defines no forward"):
        NoForward()(ones(2))
    with pytest.raises(RuntimeError, match="TooManyGradients.backward returned 2 gradients for 1 inputs"):
        TooManyGradients()(ones(2)).sum().backward()
    with pytest.raises(RuntimeError, match=re.escape("wrong_shape.backward returned a gradient of shape () "
                                                     "for an input of shape (2,)")):
        WrongShape()(ones(2)).sum().backward()


def test_a_forward_error_keeps_the_traceback_into_forward():
    class Broken(tg.Function):
        def forward(self, x):
            return np.reshape(x, (7,))  # a ValueError from inside the user's forward

    with pytest.raises(ValueError, match=r"^Broken: .* \(input shapes \(3,\)\)$") as error:
        Broken()(tg.Variable(np.ones(3)))
    cause = error.value.__cause__
    assert isinstance(cause, ValueError)
    assert "forward" in [frame.name for frame in traceback.extract_tb(cause.__traceback__)]
