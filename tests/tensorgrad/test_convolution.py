"""F.pad and F.conv1d: against PyTorch (values and every gradient), central differences of first
and second derivatives, Unfold and Fold as each other's adjoint, and bad input."""

import re

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.functions as F

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}

CASES = [  # (C_in, C_out, k, stride, padding, dilation, groups)
    (4, 6, 3, 1, 0, 1, 1),
    (4, 6, 3, 2, 1, 1, 1),
    (4, 6, 3, 1, "same", 2, 2),
    (4, 8, 2, 3, 2, 3, 4),
    (3, 3, 4, 1, "valid", 1, 3),
    (2, 5, 1, 2, 0, 1, 1),
    (6, 4, 5, 1, "same", 1, 2),
]


def run_both(torch, x, w, b, g, **options):
    """Our and PyTorch's conv1d output and gradients (x, w, b) for the upstream gradient g."""
    ours = [tg.Variable(a) for a in (x, w)] + ([] if b is None else [tg.Variable(b)])
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w)] + ([] if b is None else
                                                                      [torch.tensor(b, requires_grad=True)])
    y = F.conv1d(*ours[:2], ours[2] if b is not None else None, **options)
    y_t = torch.nn.functional.conv1d(*theirs[:2], theirs[2] if b is not None else None, **options)
    (y * g).sum().backward()
    (y_t * torch.tensor(g)).sum().backward()
    return (y, [v.grad for v in ours]), (y_t, [v.grad for v in theirs])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_conv1d_matches_torch(torch, case, bias, batched, dtype):
    c_in, c_out, k, stride, padding, dilation, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, c_in, 13) if batched else (c_in, 13)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if bias else None
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y_t = torch.nn.functional.conv1d(torch.tensor(x), torch.tensor(w), None, **options)
    g = rng.standard_normal(tuple(y_t.shape)).astype(dtype)
    (y, grads), (y_t, grads_t) = run_both(torch, x, w, b, g, **options)
    tol = TOLERANCE[dtype]
    assert y.dtype == dtype and y.shape == tuple(y_t.shape)
    np.testing.assert_allclose(y.data, y_t.detach().numpy(), rtol=tol, atol=tol)
    for name, ours, theirs in zip(("input", "weight", "bias"), grads, grads_t):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("case", [(4, 4, 3, 2, 1, 2, 2), (2, 3, 2, 1, "same", 3, 1)])
def test_conv1d_first_and_second_derivatives(case):
    c_in, c_out, k, stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, c_in, 9)), rng.standard_normal((c_out, c_in // groups, k)), \
        rng.standard_normal(c_out)

    def conv(x, w, b):
        return F.conv1d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    assert tg.gradcheck(conv, x, w, b)
    assert tg.gradgradcheck(conv, x, w, b)


def test_unfold_and_fold_are_adjoint():
    """⟨Unfold(x), u⟩ = ⟨x, Fold(u)⟩: Fold is exactly the transpose of the window gather."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 17))
    windows = F.Unfold(3, stride=2, dilation=3)(tg.Variable(x))
    assert windows.shape == (2, (17 - 7) // 2 + 1, 3, 3)
    assert not windows.data.flags.writeable  # a view of x, not a copy
    u = rng.standard_normal(windows.shape)
    folded = F.Fold(17, 3, stride=2, dilation=3)(tg.Variable(u))
    np.testing.assert_allclose(np.sum(windows.data * u), np.sum(x * folded.data), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pad", [(1, 2), (0, 3, 2, 0), (2, -1, 1, 1), (-2, -1), (1, 1, 1, 1, 1, 1)])
def test_pad_matches_torch(torch, pad, dtype):
    x = np.random.default_rng(3).standard_normal((2, 3, 5)).astype(dtype)
    y = F.pad(tg.Variable(x), pad, value=1.5)
    expected = torch.nn.functional.pad(torch.tensor(x), pad, value=1.5).numpy()
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.data, expected)
    assert tg.gradcheck(lambda a: F.pad(a, pad, value=1.5), x.astype(np.float64))
    assert tg.gradgradcheck(lambda a: F.pad(a, pad) ** 2, x.astype(np.float64))


def test_pad_of_nothing_is_the_input():
    x = tg.Variable(np.ones((2, 3)))
    assert F.pad(x, (0, 0)) is x


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv1d(np.ones((2, 3, 4)), np.ones((2, 3, 6))),
     "conv1d: padded input length 4 (length 4 + padding 0) is shorter than the kernel's span 6 "
     "(kernel size 6, dilation 1)"),
    (lambda: F.conv1d(np.ones((2, 3, 4)), np.ones((2, 3, 3)), dilation=3, padding=1),
     "conv1d: padded input length 6 (length 4 + padding 2) is shorter than the kernel's span 7 "
     "(kernel size 3, dilation 3)"),
    (lambda: F.conv1d(np.ones((1, 6, 4)), np.ones((3, 3, 2)), groups=2),
     "conv1d: the weight's 3 output channels are not divisible by groups=2"),
    (lambda: F.conv1d(np.ones((1, 5, 4)), np.ones((4, 2, 2)), groups=2),
     "conv1d: input of shape (1, 5, 4) has 5 channels, but the weight of shape (4, 2, 2) with groups=2 "
     "expects 4"),
    (lambda: F.conv1d(np.ones((1, 1, 2, 4)), np.ones((1, 1, 2))),
     "conv1d: expected a 2-d (C_in, L) or 3-d (B, C_in, L) input, got shape (1, 1, 2, 4)"),
    (lambda: F.conv1d(np.ones(4), np.ones((1, 1, 2))),
     "conv1d: expected a 2-d (C_in, L) or 3-d (B, C_in, L) input, got shape (4,)"),
    (lambda: F.conv1d(np.ones((1, 4)), np.ones((1, 2))),
     "conv1d: expected a 3-d weight (C_out, C_in/groups, k), got shape (1, 2)"),
    (lambda: F.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)), stride=2, padding="same"),
     "conv1d: padding='same' is not supported for strided convolutions (stride=2)"),
    (lambda: F.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)), padding="full"),
     "conv1d: padding must be an integer >= 0, 'valid' or 'same', got 'full'"),
    (lambda: F.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)), stride=0),
     "conv1d: stride must be an integer >= 1, got 0"),
    (lambda: F.conv1d(np.ones((1, 1, 4)), np.ones((3, 1, 2)), np.ones(2)),
     "conv1d: bias of shape (2,) does not fit 3 output channels"),
    (lambda: F.pad(np.ones((2, 3)), (1, 2, 3)),
     "pad: padding (1, 2, 3) must hold one (before, after) pair per padded axis, at most 2 pairs"),
    (lambda: F.pad(np.ones((2, 3)), (-2, -2)),
     "pad: padding (-2, -2) crops axis 1 of an input of shape (2, 3) below zero length"),
])
def test_bad_input_names_the_numbers(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_kernel_too_long_matches_torch_rejection(torch):
    """Where our conv1d refuses a kernel longer than the padded input, PyTorch refuses too."""
    with pytest.raises(RuntimeError):
        torch.nn.functional.conv1d(torch.ones(2, 3, 4), torch.ones(2, 3, 6))
    with pytest.raises(RuntimeError):
        torch.nn.functional.conv1d(torch.ones(1, 1, 4), torch.ones(1, 1, 2), stride=2, padding="same")
