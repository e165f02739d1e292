"""softmax_cross_entropy and mse_loss (and their module forms) against PyTorch, central
differences, and bad input."""

import numpy as np
import pytest

import nn
import tensorgrad as tg
from nn.losses import CrossEntropy

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


def logits_and_targets(shape, dtype, ignore_index=-100, seed=0):
    """Logits of ``shape`` (N, C, ...) and targets with a few positions set to ``ignore_index``."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    targets = rng.integers(0, shape[1], size=shape[:1] + shape[2:])
    targets.reshape(-1)[::3] = ignore_index
    return logits, targets


def cross_entropy_both(torch, logits, targets, **options):
    """(our loss, our logits gradient, torch's loss, torch's logits gradient) for one weighting."""
    ours_x = tg.Variable(logits)
    theirs_x = torch.tensor(logits, requires_grad=True)
    ours = nn.softmax_cross_entropy(ours_x, targets, **options)
    theirs = torch.nn.functional.cross_entropy(theirs_x, torch.tensor(targets), **options)
    weights = np.random.default_rng(1).standard_normal(ours.shape).astype(logits.dtype)
    (ours * weights).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    return ours, ours_x.grad.data, theirs.detach().numpy(), theirs_x.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 2, 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_cross_entropy_matches_torch(torch, dtype, shape, reduction, label_smoothing, ignore_index):
    logits, targets = logits_and_targets(shape, dtype, ignore_index)
    ours, ours_grad, theirs, theirs_grad = cross_entropy_both(
        torch, logits, targets, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing)
    tol = TOLERANCE[dtype]
    assert ours.dtype == dtype and ours.shape == theirs.shape
    np.testing.assert_allclose(ours.data, theirs, rtol=tol, atol=tol)
    np.testing.assert_allclose(ours_grad, theirs_grad, rtol=tol, atol=tol)


def test_cross_entropy_of_one_unbatched_sample_matches_torch(torch):
    logits = np.array([0.5, -1.0, 2.0, 0.0])
    for reduction in ("mean", "none"):
        ours, ours_grad, theirs, theirs_grad = cross_entropy_both(
            torch, logits, np.array(2), reduction=reduction, label_smoothing=0.1)
        assert ours.shape == ()
        np.testing.assert_allclose(ours.data, theirs, rtol=1e-12)
        np.testing.assert_allclose(ours_grad, theirs_grad, rtol=1e-12)


def test_cross_entropy_is_stable_for_huge_logits(torch):
    logits = np.array([[1e4, -1e4, 0.0], [3e4, 3e4, -5e3]], dtype=np.float32)
    ours, ours_grad, theirs, theirs_grad = cross_entropy_both(torch, logits, np.array([1, 0]),
                                                              label_smoothing=0.1)
    assert np.isfinite(ours.data) and np.isfinite(ours_grad).all()
    np.testing.assert_allclose(ours.data, theirs, rtol=1e-6)
    np.testing.assert_allclose(ours_grad, theirs_grad, atol=1e-6)


def test_cross_entropy_mean_over_no_counted_target_is_nan_with_zero_gradient(torch):
    logits = np.random.default_rng(0).standard_normal((3, 4))
    ours, ours_grad, theirs, theirs_grad = cross_entropy_both(torch, logits, np.full(3, -100),
                                                              label_smoothing=0.1)
    assert np.isnan(ours.data) and np.isnan(theirs)
    np.testing.assert_array_equal(ours_grad, theirs_grad)


def test_cross_entropy_formula_with_label_smoothing():
    # ℓ = -(1 - ε) log p_t - ε/C Σ log p_c, averaged over the counted positions only
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [4.0, -1.0, 0.5]])
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    eps = 0.3
    expected = np.mean([-(1 - eps) * log_p[i, t] - eps / 3 * log_p[i].sum() for i, t in ((0, 2), (2, 0))])
    loss = nn.softmax_cross_entropy(logits, np.array([2, -100, 0]), label_smoothing=eps)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-12)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_gradcheck(label_smoothing, reduction):
    logits, targets = logits_and_targets((3, 4, 2), np.float64)
    assert tg.gradcheck(lambda z: nn.softmax_cross_entropy(z, targets, reduction=reduction,
                                                           label_smoothing=label_smoothing), logits)
    assert tg.gradgradcheck(lambda z: nn.softmax_cross_entropy(z, targets), logits, atol=1e-4)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 2)])
def test_cross_entropy_backward_recorded_equals_unrecorded(label_smoothing, shape):
    # Two code paths: NumPy on the saved softmax, and Variables (create_graph) for higher derivatives.
    logits, targets = logits_and_targets(shape, np.float64)
    weights = np.random.default_rng(2).standard_normal(targets.shape)
    z = tg.Variable(logits)

    def weighted_loss():
        return (nn.softmax_cross_entropy(z, targets, reduction="none", label_smoothing=label_smoothing)
                * weights).sum()

    (plain,) = tg.grad(weighted_loss(), z)
    (recorded,) = tg.grad(weighted_loss(), z, create_graph=True)
    assert recorded.creator is not None and plain.creator is None
    np.testing.assert_allclose(plain.data, recorded.data, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 2)])
def test_cross_entropy_mean_with_every_target_counted(label_smoothing, shape):
    """One weight for every position (the mean, nothing ignored; uint8 targets): the array-level
    gradient is (softmax(z) - q)/n, as the recorded one and the formula give."""
    logits = np.random.default_rng(3).standard_normal(shape)
    targets = np.random.default_rng(4).integers(0, shape[1], size=shape[:1] + shape[2:]).astype(np.uint8)
    z = tg.Variable(logits)
    (plain,) = tg.grad(nn.softmax_cross_entropy(z, targets, label_smoothing=label_smoothing), z)
    (recorded,) = tg.grad(nn.softmax_cross_entropy(z, targets, label_smoothing=label_smoothing), z,
                          create_graph=True)
    onehot = np.moveaxis(np.eye(shape[1])[targets], -1, 1)
    q = onehot * (1 - label_smoothing) + label_smoothing / shape[1]
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = (softmax - q) / targets.size
    np.testing.assert_allclose(plain.data, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(recorded.data, expected, rtol=1e-12, atol=1e-15)


def test_cross_entropy_bad_input():
    logits = np.zeros((4, 5), np.float32)
    with pytest.raises(TypeError, match="targets must be integer class indices, got dtype float32"):
        nn.softmax_cross_entropy(logits, np.zeros(4, np.float32))
    with pytest.raises(IndexError, match="target 7 is out of range for 5 classes"):
        nn.softmax_cross_entropy(logits, np.array([0, 7, 1, 2]))
    with pytest.raises(IndexError, match="target -1 is out of range for 5 classes"):
        nn.softmax_cross_entropy(logits, np.array([0, -1, 1, 2]))
    with pytest.raises(tg.ShapeError, match=r"logits of shape \(4, 5\) need targets of shape \(4,\), "
                                            r"got \(3,\)"):
        nn.softmax_cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(tg.ShapeError, match=r"need targets of shape \(4, 2\)"):
        nn.softmax_cross_entropy(np.zeros((4, 5, 2)), np.zeros((4, 3), np.int64))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.softmax_cross_entropy(logits, np.zeros(4, np.int64), reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        nn.softmax_cross_entropy(logits, np.zeros(4, np.int64), label_smoothing=1.5)


def test_cross_entropy_module(torch):
    logits, targets = logits_and_targets((5, 4), np.float64, ignore_index=0)
    loss = nn.SoftmaxCrossEntropy(ignore_index=0, reduction="sum", label_smoothing=0.1)
    expected = torch.nn.CrossEntropyLoss(ignore_index=0, reduction="sum", label_smoothing=0.1)(
        torch.tensor(logits), torch.tensor(targets))
    np.testing.assert_allclose(loss(logits, targets).data, expected.numpy(), rtol=1e-12)
    assert repr(loss) == "SoftmaxCrossEntropy(ignore_index=0, reduction='sum', label_smoothing=0.1)"
    with pytest.raises(ValueError, match="reduction"):
        nn.SoftmaxCrossEntropy(reduction="max")


# ------------------------------------------------------------------------- mse_loss
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(torch, dtype, reduction):
    rng = np.random.default_rng(0)
    x, target = rng.standard_normal((2, 3, 4)).astype(dtype), rng.standard_normal((2, 3, 4)).astype(dtype)
    ours_x, ours_t = tg.Variable(x), tg.Variable(target)
    theirs_x, theirs_t = torch.tensor(x, requires_grad=True), torch.tensor(target, requires_grad=True)
    ours = nn.MSELoss(reduction)(ours_x, ours_t)
    theirs = torch.nn.MSELoss(reduction=reduction)(theirs_x, theirs_t)
    weights = rng.standard_normal(ours.shape).astype(dtype)
    (ours * weights).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    tol = TOLERANCE[dtype]
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ours_x.grad.data, theirs_x.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ours_t.grad.data, theirs_t.grad.numpy(), rtol=tol, atol=tol)


def test_mse_loss_value_gradcheck_and_bad_input():
    x, target = np.array([1.0, 2.0, 4.0]), np.array([0.0, 2.0, 1.0])
    np.testing.assert_allclose(nn.mse_loss(x, target).data, 10 / 3)
    assert tg.gradcheck(lambda a, b: nn.mse_loss(a, b, "sum"), x, target)
    with pytest.raises(tg.ShapeError, match=r"mse_loss: input of shape \(3,\) and target of shape \(1, 3\)"):
        nn.mse_loss(x, target.reshape(1, 3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.mse_loss(x, target, reduction="elementwise_mean")


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2)])
def test_cross_entropy_function_gradients(label_smoothing, shape):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal(shape) * 2
    targets = rng.integers(0, shape[1], shape[:1] + shape[2:])
    counted = rng.random(targets.shape) > 0.3
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    q = np.full(shape, label_smoothing / shape[1])
    np.put_along_axis(q, np.expand_dims(targets, 1), 1 - label_smoothing + label_smoothing / shape[1], axis=1)
    expected = np.where(counted, -(q * log_p).sum(axis=1), 0)

    def loss(z):
        return CrossEntropy(-100, label_smoothing)(z, np.where(counted, targets, -100))

    np.testing.assert_allclose(loss(tg.Variable(logits)).data, expected, rtol=1e-12)
    assert tg.gradcheck(loss, logits)
    assert tg.gradgradcheck(loss, logits, atol=1e-4)
