"""clip_grad_norm and clip_grad_value against torch.nn.utils, shared and read-only gradient
arrays, non-finite norms and bad input."""

import numpy as np
import pytest

import nn
import tensorgrad as tg


def params_with_grads(dtype=np.float64, scale=1.0, seed=0):
    """Three parameters with gradients and one without."""
    rng = np.random.default_rng(seed)
    shapes = ((3, 4), (4,), (2, 2, 2), (5,))
    params = [nn.Parameter(rng.standard_normal(shape).astype(dtype)) for shape in shapes]
    for p in params[:3]:
        p.grad = tg.Variable(rng.standard_normal(p.shape).astype(dtype) * scale, requires_grad=False)
    return params


def torch_copies(torch, params):
    copies = []
    for p in params:
        copy = torch.tensor(p.data, requires_grad=True)
        if p.grad is not None:
            copy.grad = torch.tensor(p.grad.data)
        copies.append(copy)
    return copies


@pytest.mark.parametrize("norm_type", [2.0, float("inf"), 1.0, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm, dtype):
    params = params_with_grads(dtype)
    copies = torch_copies(torch, params)
    total = nn.clip_grad_norm(params, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(copies, max_norm, norm_type=norm_type)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected.item(), rtol=tol)
    for p, copy in zip(params, copies, strict=True):
        if copy.grad is None:
            assert p.grad is None  # skipped
            continue
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad.data, copy.grad.numpy(), rtol=tol, atol=tol)
    clipped = [p.grad.data for p in params if p.grad is not None]
    new_norm = np.linalg.norm(np.concatenate([g.ravel() for g in clipped]).astype(np.float64), norm_type)
    assert new_norm <= max_norm * (1 + 1e-5)


def test_clip_grad_norm_scales_a_gradient_shared_by_two_parameters_once():
    a, b = tg.Variable(np.array([3.0, 0.0])), tg.Variable(np.array([0.0, 4.0]))
    shared = np.broadcast_to(np.array(1.0), (2,))  # read-only, as a broadcast gradient can be
    a.grad = b.grad = tg.Variable(shared, requires_grad=False)
    total = nn.clip_grad_norm([a, b], 1.0)
    np.testing.assert_allclose(total, 2.0)
    np.testing.assert_allclose(a.grad.data, [1 / (2 + 1e-6)] * 2)
    np.testing.assert_allclose(b.grad.data, [1 / (2 + 1e-6)] * 2)
    np.testing.assert_array_equal(shared, [1.0, 1.0])


def test_clip_grad_norm_leaves_small_gradients_and_accepts_one_variable():
    (p,) = params_with_grads()[1:2]
    before = p.grad
    total = nn.clip_grad_norm(p, 1e6)
    assert p.grad is before and total == pytest.approx(np.linalg.norm(before.data))
    assert nn.clip_grad_norm([nn.Parameter(np.zeros(3))], 1.0) == 0.0  # no gradients at all


@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")  # inf·0
def test_clip_grad_norm_non_finite(torch):
    params = params_with_grads()
    params[0].grad.data[0, 0] = np.inf
    before = [p.grad for p in params]
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        nn.clip_grad_norm(params, 1.0, error_if_nonfinite=True)
    assert [p.grad for p in params] == before  # nothing changed
    copies = torch_copies(torch, params)
    nn.clip_grad_norm(params, 1.0)
    torch.nn.utils.clip_grad_norm_(copies, 1.0)
    for p, copy in zip(params[:3], copies[:3], strict=True):
        np.testing.assert_array_equal(p.grad.data, copy.grad.numpy())  # inf·0 = NaN, the rest 0


def test_clip_grad_norm_bad_input():
    params = params_with_grads()
    before = [p.grad.data.copy() for p in params[:3]]
    with pytest.raises(ValueError, match="max_norm must be non-negative, got -1.0"):
        nn.clip_grad_norm(params, -1.0)
    with pytest.raises(ValueError, match="norm_type must be positive or inf"):
        nn.clip_grad_norm(params, 1.0, norm_type=0)
    for p, grad in zip(params, before, strict=False):
        np.testing.assert_array_equal(p.grad.data, grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_value_matches_torch(torch, dtype):
    params = params_with_grads(dtype, scale=2.0)
    copies = torch_copies(torch, params)
    nn.clip_grad_value(params, 0.7)
    torch.nn.utils.clip_grad_value_(copies, 0.7)
    assert params[3].grad is None
    for p, copy in zip(params[:3], copies[:3], strict=True):
        assert p.grad.dtype == dtype
        np.testing.assert_array_equal(p.grad.data, copy.grad.numpy())
    assert max(np.abs(p.grad.data).max() for p in params[:3]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="clip_value must be non-negative"):
        nn.clip_grad_value(params, -0.1)


def test_clip_grad_value_does_not_write_into_shared_arrays():
    a, b = tg.Variable(np.array([3.0, -5.0])), tg.Variable(np.array([1.0, 1.0]))
    shared = np.array([0.5, -2.0])
    a.grad = b.grad = tg.Variable(shared, requires_grad=False)
    nn.clip_grad_value([a, b], 0.25)
    np.testing.assert_array_equal(a.grad.data, [0.25, -0.25])
    np.testing.assert_array_equal(b.grad.data, [0.25, -0.25])
    np.testing.assert_array_equal(shared, [0.5, -2.0])
