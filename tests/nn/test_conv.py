"""nn.Conv1d and nn.CausalConv1d: against PyTorch with the same weights, PyTorch's
initialisation and output length, causality, and bad arguments."""

import re

import numpy as np
import pytest

import nn
import tensorgrad as tg
from tests.nn.test_layers import check_against_torch

CASES = [  # (C_in, C_out, k, stride, padding, dilation, groups, L)
    (4, 6, 3, 1, 0, 1, 1, 10),
    (4, 6, 3, 2, 2, 1, 2, 11),
    (3, 6, 2, 1, "same", 4, 3, 12),
    (4, 4, 5, 3, "valid", 2, 1, 20),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_conv1d_matches_torch(torch, case, bias, batched, dtype):
    c_in, c_out, k, stride, padding, dilation, groups, length = case
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)
    shape = (3, c_in, length) if batched else (c_in, length)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    ours = nn.Conv1d(c_in, c_out, k, **options)
    theirs = torch.nn.Conv1d(c_in, c_out, k, **options)
    check_against_torch(torch, ours, theirs, x, dtype)
    assert ours(x).shape[-1] == ours.output_length(length) == theirs(torch.tensor(x)).shape[-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("stride, padding, dilation", [(1, 2, 1), (2, 3, 2), (1, "same", 3)])
def test_padding_modes_match_torch(torch, stride, padding, dilation, padding_mode, batched, dtype):
    options = dict(stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode)
    shape = (2, 3, 9) if batched else (3, 9)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    ours, theirs = nn.Conv1d(3, 4, 3, **options), torch.nn.Conv1d(3, 4, 3, **options)
    check_against_torch(torch, ours, theirs, x, dtype)
    assert f"padding_mode='{padding_mode}'" in repr(ours)


def test_padding_mode_gradients_by_central_differences():
    conv = nn.Conv1d(2, 2, 3, padding=2, padding_mode="reflect").double()
    assert tg.gradcheck(conv, np.random.default_rng(1).standard_normal((1, 2, 5)))


@pytest.mark.parametrize("length", range(7, 14))
def test_output_length_is_pytorchs(torch, length):
    for stride, padding, dilation in [(1, 0, 1), (2, 1, 2), (3, 2, 1), (2, 0, 3)]:
        conv = nn.Conv1d(2, 3, 3, stride=stride, padding=padding, dilation=dilation)
        expected = torch.nn.Conv1d(2, 3, 3, stride=stride, padding=padding, dilation=dilation)(
            torch.ones(1, 2, length)).shape[-1]
        assert conv.output_length(length) == expected == conv(np.ones((1, 2, length), np.float32)).shape[-1]


def test_initialisation_is_pytorchs_bound():
    """kaiming_uniform(a=√5) on (out, in/groups, k) and the bias both give U(±1/√(in/groups·k))."""
    tg.manual_seed(0)
    conv = nn.Conv1d(8, 600, 5, groups=2)
    bound = 1 / np.sqrt(8 // 2 * 5)
    assert [(n, p.shape, p.dtype) for n, p in conv.named_parameters()] == [
        ("weight", (600, 4, 5), np.float32), ("bias", (600,), np.float32)]
    for param in (conv.weight, conv.bias):
        assert bound * 0.98 < np.abs(param.data).max() <= bound
        np.testing.assert_allclose(param.data.std(), bound / np.sqrt(3), rtol=0.1)
    assert nn.Conv1d(2, 2, 3, bias=False).bias is None


def test_causal_conv_equals_front_padded_torch_conv(torch):
    """CausalConv1d = PyTorch's Conv1d with padding (k-1)·d on both sides, its last (k-1)·d outputs cut."""
    ours = nn.CausalConv1d(3, 5, 3, dilation=2)
    theirs = torch.nn.Conv1d(3, 5, 3, dilation=2, padding=4)
    ours.double().load_state_dict({k: v.detach().double().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 9))
    expected = theirs.double()(torch.tensor(x))[..., :-4].detach().numpy()
    np.testing.assert_allclose(ours(x).data, expected, rtol=1e-10, atol=1e-10)
    assert ours.receptive_field == 5 and "receptive_field=5" in repr(ours)


def test_causal_conv_never_looks_ahead():
    conv = nn.CausalConv1d(2, 3, 4, dilation=3).double()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 20))
    y = conv(x).data
    for t in range(20):
        changed = x.copy()
        changed[..., t + 1:] = rng.standard_normal(changed[..., t + 1:].shape)
        np.testing.assert_array_equal(conv(changed).data[..., :t + 1], y[..., :t + 1])


def test_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("Conv1d: in_channels (5) and out_channels (4) must both "
                                                   "be divisible by groups (2)")):
        nn.Conv1d(5, 4, 3, groups=2)
    with pytest.raises(ValueError, match=re.escape("Conv1d: padding='same' is not supported for strided "
                                                   "convolutions (stride=2)")):
        nn.Conv1d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=re.escape("Conv1d: padding must be an integer >= 0, 'valid' or "
                                                   "'same', got 'full'")):
        nn.Conv1d(2, 2, 3, padding="full")
    with pytest.raises(ValueError, match=re.escape("Conv1d: padding_mode must be one of ('zeros', 'reflect', "
                                                   "'replicate', 'circular'), got 'mirror'")):
        nn.Conv1d(2, 2, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=re.escape("Conv1d: reflect padding of 4 must be less than the input "
                                                   "length 4")):
        nn.Conv1d(2, 2, 3, padding=4, padding_mode="reflect")(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape("Conv1d: circular padding of 5 must not exceed the input "
                                                   "length 4")):
        nn.Conv1d(2, 2, 3, padding=5, padding_mode="circular")(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape("conv1d: input of shape (2, 3, 8) has 3 channels")):
        nn.Conv1d(4, 2, 3)(np.ones((2, 3, 8), np.float32))


def test_repr():
    assert repr(nn.Conv1d(4, 6, 3, padding="same", dilation=2, groups=2, bias=False)) == (
        "Conv1d(4, 6, kernel_size=3, stride=1, padding='same', dilation=2, groups=2, bias=False)")
