"""``tg.gradcheck`` and ``tg.gradgradcheck`` catch wrong user Functions and say where."""

import re

import numpy as np
import pytest

import tensorgrad as tg


class Square(tg.Function):
    """y = x²; a correct backward, written in Variables so it differentiates again."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return 2.0 * gy * self.inputs[0]


class SquareWrongBackward(Square):
    def backward(self, gy):
        return gy * self.inputs[0]  # the factor 2 is missing


class SquareConstantBackward(Square):
    def backward(self, gy):
        # The right value, but computed from the raw array: invisible to a second derivative.
        return 2.0 * gy * self.inputs[0].data


class WeightedProduct(tg.Function):
    """y = a ⊙ b with a wrong gradient for b only."""

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return gy * b, gy * a * 1.5


def x(name=None):
    return tg.Variable(np.array([[0.3, -1.2, 2.0], [0.7, 1.1, -0.4]]), name=name)


def test_a_correct_function_passes():
    assert tg.gradcheck(lambda v: Square()(v), x())
    assert tg.gradgradcheck(lambda v: Square()(v), x())


def test_a_wrong_backward_is_caught_and_the_input_named():
    with pytest.raises(tg.GradcheckError, match=r"gradcheck: input 0 \('w'\) of shape \(2, 3\): element "
                                                r"\(\d, \d\) has analytic gradient .* but numerical"):
        tg.gradcheck(lambda v: SquareWrongBackward()(v), x("w"))


def test_the_wrong_one_of_several_inputs_is_named():
    a, b = x("a"), tg.Variable(np.full((2, 3), 0.5), name="b")
    with pytest.raises(tg.GradcheckError, match=re.escape("gradcheck: input 1 ('b') of shape (2, 3)")):
        tg.gradcheck(lambda a, b: WeightedProduct()(a, b), a, b)


def test_the_worst_element_is_reported():
    # d/dx of x² is 2x; the wrong backward gives x, so the error is largest where |x| is.
    values = np.array([0.1, -3.0, 0.2])
    with pytest.raises(tg.GradcheckError, match=r"element \(1,\) has analytic gradient -?[\d.]+ but "
                                                r"numerical -?[\d.]+ \(tolerance atol=1e-05"):
        tg.gradcheck(lambda v: SquareWrongBackward()(v), tg.Variable(values))


def test_a_backward_that_is_not_differentiable_is_caught_by_gradgradcheck():
    assert tg.gradcheck(lambda v: SquareConstantBackward()(v), x())
    with pytest.raises(tg.GradcheckError, match=r"input 0 of shape \(2, 3\)"):
        tg.gradgradcheck(lambda v: SquareConstantBackward()(v), x())


def test_float32_inputs_are_checked_in_float64():
    # In float32 central differences would be far too coarse for these tolerances.
    v = tg.Variable(np.array([0.3, -1.2], dtype=np.float32))
    assert tg.gradcheck(lambda v: Square()(v) * 3.0, v)
    assert v.dtype == np.float32  # the caller's Variable is left alone


def test_inputs_that_need_no_gradient_are_passed_as_they_are():
    ids = np.array([1, 1, 0])
    constant = tg.Variable(np.array([2.0, 3.0]), requires_grad=False)
    assert tg.gradcheck(lambda v, ids, c: Square()(v)[ids] * c[ids], x(), ids, constant)
    with pytest.raises(ValueError, match="gradcheck: no floating-point input to check"):
        tg.gradcheck(lambda ids: ids, ids)
