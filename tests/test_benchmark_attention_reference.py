"""The hand-written NumPy encoder layer of benchmarks/numpy_transformer.py computes what
nn.TransformerEncoderLayer computes: outputs and every gradient to 1e-10 in float64."""

import os
import sys

import numpy as np

import nn
import tensorgrad as tg

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
from numpy_transformer import EncoderLayer  # noqa: E402


def test_numpy_encoder_layer_equals_tensorgrad():
    tg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0).double()
    for param in layer.parameters():  # not the zero biases and unit norms of the initialisation
        param.data += np.random.default_rng(param.size).normal(0, 0.1, param.shape)
    reference = EncoderLayer(layer.state_dict(), nhead=2)
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((5, 3, 8)), rng.standard_normal((5, 3, 8))
    x_var = tg.Variable(x)
    y = layer(x_var, src_mask=nn.generate_square_subsequent_mask(5, np.float64), is_causal=True)
    y.backward(tg.Variable(dy))
    np.testing.assert_allclose(reference.forward(x), y.data, rtol=1e-10, atol=1e-10)
    dx, grads = reference.backward(dy)
    np.testing.assert_allclose(dx, x_var.grad.data, rtol=1e-10, atol=1e-10)
    assert sorted(grads) == sorted(name for name, _ in layer.named_parameters())
    for name, param in layer.named_parameters():
        np.testing.assert_allclose(grads[name], param.grad.data, rtol=1e-10, atol=1e-10, err_msg=name)


def test_numpy_encoder_layer_stays_float32():
    tg.manual_seed(0)
    reference = EncoderLayer(nn.TransformerEncoderLayer(8, 2, dim_feedforward=12).state_dict(), nhead=2)
    x = np.random.default_rng(0).standard_normal((5, 3, 8)).astype(np.float32)
    assert reference.forward(x).dtype == np.float32
    dx, grads = reference.backward(x)
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
