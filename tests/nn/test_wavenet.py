"""The WaveNet stack: causality, the receptive field (formula, repr, and the measured support of
the gradient), the gated residual block's equations, and the character model's context."""

import numpy as np
import pytest

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from nn.wavenet import CharWaveNet, ResidualBlock, WaveNet


def stack(channels=3, layers=4, kernel_size=2):
    tg.manual_seed(0)
    return WaveNet(channels, layers, kernel_size).double()


@pytest.mark.parametrize("layers, kernel_size", [(1, 2), (4, 2), (3, 3), (2, 4)])
def test_receptive_field_is_the_formula(layers, kernel_size):
    net = stack(layers=layers, kernel_size=kernel_size)
    dilations = [2 ** i for i in range(layers)]
    assert [block.dilated.dilation for block in net.children()] == dilations
    assert net.receptive_field == 1 + (kernel_size - 1) * sum(dilations)
    assert f"receptive_field={net.receptive_field}" in repr(net)


@pytest.mark.parametrize("layers, kernel_size", [(4, 2), (3, 3)])
def test_receptive_field_is_the_support_of_the_gradient(layers, kernel_size):
    """∂y[..., t]/∂x[..., s] ≠ 0 exactly for t - receptive_field < s ≤ t."""
    net = stack(layers=layers, kernel_size=kernel_size)
    length, t = 40, 30
    x = tg.Variable(np.random.default_rng(0).standard_normal((2, 3, length)))
    net(x)[..., t].sum().backward()
    reached = np.flatnonzero(np.abs(x.grad.data).sum(axis=(0, 1)) > 0)
    assert list(reached) == list(range(t - net.receptive_field + 1, t + 1))


def test_output_never_depends_on_the_future():
    net = stack()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 24))
    y = net(x).data
    for t in range(24):
        changed = x.copy()
        changed[..., t + 1:] += rng.standard_normal(changed[..., t + 1:].shape)
        np.testing.assert_array_equal(net(changed).data[..., :t + 1], y[..., :t + 1])


def test_residual_block_is_the_gated_equation():
    tg.manual_seed(0)
    block = ResidualBlock(2, 3, kernel_size=2, dilation=2).double()
    x = np.random.default_rng(2).standard_normal((1, 2, 7))
    w, b = block.dilated.weight.data, block.dilated.bias.data
    padded = np.pad(x, ((0, 0), (0, 0), (2, 0)))
    pre = np.einsum("ocj,bcjt->bot", w, np.stack([padded[..., :-2], padded[..., 2:]], axis=2)) + b[:, None]
    z = np.tanh(pre[:, :2]) * (1 / (1 + np.exp(-pre[:, 2:])))
    out, skip = block(x)
    np.testing.assert_allclose(out.data, x + np.einsum("oc,bct->bot", block.residual.weight.data[..., 0], z)
                               + block.residual.bias.data[:, None], rtol=1e-12)
    np.testing.assert_allclose(skip.data, np.einsum("oc,bct->bot", block.skip.weight.data[..., 0], z)
                               + block.skip.bias.data[:, None], rtol=1e-12)


def test_gradients_by_central_differences():
    net = stack(channels=2, layers=2)
    assert tg.gradcheck(net, np.random.default_rng(3).standard_normal((1, 2, 6)))
    x = tg.Variable(np.random.default_rng(3).standard_normal((1, 2, 6)), requires_grad=False)
    net(x).sum().backward()
    assert all(p.grad is not None and np.abs(p.grad.data).sum() > 0 for p in net.parameters())


def test_char_wavenet_continues_from_its_context():
    """Logits for a window given the previous window's context equal those of the whole stream."""
    tg.manual_seed(0)
    model = CharWaveNet(7, hidden_size=5, num_layers=3).double()
    ids = np.random.default_rng(4).integers(0, 7, (20, 2))
    whole, _ = model(ids)
    first, context = model(ids[:9])
    second, _ = model(ids[9:], context)
    assert whole.shape == (20, 2, 7) and context.shape == (model.receptive_field - 1, 2)
    np.testing.assert_array_equal(context.data, ids[9 - 7:9])
    np.testing.assert_allclose(np.concatenate([first.data, second.data]), whole.data, rtol=1e-12, atol=1e-12)


def test_scopes_name_the_layers():
    net = stack(layers=2)
    y = net(tg.Variable(np.ones((1, 3, 5))))
    scopes, seen, frontier = set(), set(), [y.creator]
    while frontier:
        f = frontier.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        scopes.add(f.scope)
        frontier.extend(x.creator for x in f.inputs)
    assert {"wavenet.0", "wavenet.1"} <= scopes


def test_bad_arguments():
    with pytest.raises(ValueError, match="WaveNet: num_layers must be at least 1, got 0"):
        WaveNet(3, 0)
    with pytest.raises(ValueError, match=r"conv1d: input of shape \(1, 2, 5\) has 2 channels, but the weight "
                       r"of shape \(6, 3, 2\) with groups=1 expects 3"):
        stack()(np.ones((1, 2, 5)))
    assert nn.WaveNet is WaveNet and F.conv1d is not None
