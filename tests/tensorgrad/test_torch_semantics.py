"""Forward values and gradients agree with PyTorch, including at ties and kinks where the
choice of subgradient is a convention (skipped where PyTorch is not installed)."""

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.functions as F


def both(torch, fn_tg, fn_torch, *arrays, gy=None):
    """Run the same function in tensorgrad and in PyTorch; compare outputs and input gradients."""
    ours = [tg.Variable(a) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, y_ref = fn_tg(*ours), fn_torch(*theirs)
    np.testing.assert_allclose(y.data, y_ref.detach().numpy(), rtol=1e-12, atol=1e-15)
    gy = np.random.default_rng(1).standard_normal(y.shape) if gy is None else gy
    y.backward(gy)
    y_ref.backward(torch.tensor(gy))
    for v, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-14)


X = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 1.0, -2.0, 0.25], [-0.5, -0.75, 1.5, 1.0]])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax(torch, axis):
    both(torch, lambda x: F.softmax(x, axis), lambda x: torch.softmax(x, axis), X)
    both(torch, lambda x: F.log_softmax(x, axis), lambda x: torch.log_softmax(x, axis), X)


@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), (1, True), ((0, 1), True)])
def test_logsumexp(torch, axis, keepdims):
    dim = tuple(range(X.ndim)) if axis is None else axis
    both(torch, lambda x: F.logsumexp(x, axis, keepdims), lambda x: torch.logsumexp(x, dim, keepdims), X)


def test_logsumexp_of_large_and_infinite_values(torch):
    x = np.array([[1000.0, 1000.0, -np.inf], [-np.inf, -np.inf, -np.inf]])
    y, y_ref = F.logsumexp(tg.Variable(x), 1), torch.logsumexp(torch.tensor(x), 1)
    np.testing.assert_array_equal(y.data, y_ref.numpy())  # 1000 + log 2, and -inf


TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, 4.0, 5.0]])


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_max_splits_the_gradient_evenly_at_ties_as_amax(torch, axis):
    dim = tuple(range(TIES.ndim)) if axis is None else axis
    both(torch, lambda x: F.max(x, axis), lambda x: torch.amax(x, dim), TIES)
    both(torch, lambda x: x.max(axis, keepdims=True), lambda x: torch.amax(x, dim, keepdim=True), TIES)


def test_maximum_splits_the_gradient_evenly_at_ties(torch):
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = np.array([[1.0, 0.0, 3.0], [5.0, 5.0, 1.0]])
    both(torch, F.maximum, torch.maximum, a, b)
    both(torch, F.maximum, torch.maximum, a, np.array([2.0, 5.0, 3.0]))  # broadcast ties


def test_relu_and_clip_at_their_kinks(torch):
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    both(torch, F.relu, torch.relu, x)
    both(torch, lambda x: F.clip(x, 0.0, 1.0), lambda x: torch.clamp(x, 0.0, 1.0), x)


def test_embedding_with_padding_idx(torch):
    weight = np.random.default_rng(0).standard_normal((5, 3))
    ids = np.array([[0, 2, 2], [4, 0, 1]])
    both(torch, lambda w: F.embedding(ids, w, padding_idx=2),
         lambda w: torch.nn.functional.embedding(torch.tensor(ids), w, padding_idx=2), weight)


@pytest.mark.parametrize("base, exponent", [
    (np.array([0.0, 1.0]), np.array(2.0)),       # ∂/∂b at a = 0: aᵇ log a = 0 · -inf
    (np.array([0.0, 2.0, 0.5]), np.array(0.0)),   # ∂/∂a of a⁰ at a = 0: 0 · 0⁻¹
    (np.array(0.0), np.array([0.0, 1.5, 3.0])),   # ∂/∂b of 0ᵇ
    (np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, -1.0])),
])
def test_pow_gradients_where_the_formulas_give_nan(torch, base, exponent):
    both(torch, lambda a, b: a ** b, lambda a, b: a ** b, base, exponent)


def test_pow_of_a_constant_zero_base_and_of_a_zero_exponent(torch):
    y = tg.Variable(np.array([0.0, 0.5, 2.0]))
    (0.0 ** y).sum().backward()
    expected = torch.tensor(y.data, requires_grad=True)
    (0.0 ** expected).sum().backward()
    np.testing.assert_array_equal(y.grad.data, expected.grad.numpy())
    x = tg.Variable(np.array([0.0, 3.0]))
    (x ** 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])

