"""The computation graph of a small unrolled recurrent network (or a small causal Transformer
encoder, or a small WaveNet), for `tensorgrad graph`."""

import numpy as np

import tensorgrad as tg
from nn.charlm import RECURRENT_LAYERS
from nn.positional import generate_square_subsequent_mask
from nn.transformer import TransformerEncoder, TransformerEncoderLayer
from nn.wavenet import WaveNet
from tensorgrad import viz


def unrolled_graph(model="lstm", steps=3, *, input_size=3, hidden_size=4, batch=2, collapse=False, seed=0,
                   window=None, time="right"):
    """The Graphviz drawing of loss = mean(output²) for a one-layer ``model`` over ``steps``.

    Backward has run with ``retain_grad=True``, so every node shows its gradient norm; each
    time step is a cluster (or one node, with ``collapse``), in time order; ``window`` (a
    slice) draws those steps in full and folds the others (``make_dot(..., steps=window)``).
    ``model="transformer"`` draws :func:`transformer_graph` instead,
    ``model="wavenet"`` :func:`wavenet_graph`.
    """
    if model == "transformer":
        return transformer_graph(steps, collapse=collapse, seed=seed)
    if model == "wavenet":
        return wavenet_graph(steps, collapse=collapse, seed=seed)
    tg.manual_seed(seed)
    layer = RECURRENT_LAYERS[model](input_size, hidden_size)
    x = tg.Variable(np.random.default_rng(seed).standard_normal((steps, batch, input_size))
                    .astype(np.float32), name="x")
    output, _ = layer(x)
    loss = (output * output).mean()
    loss.name = "loss"
    loss.backward(retain_grad=True)
    return viz.make_dot(loss, params=dict(layer.named_parameters()), collapse=collapse, steps=window,
                        time=time)


def transformer_graph(steps=3, *, d_model=4, nhead=2, num_layers=2, batch=2, collapse=False, seed=0):
    """The drawing of loss = mean(output²) for a causal ``num_layers``-layer Transformer encoder
    over ``steps`` positions: one cluster per layer holding one per sublayer (``self_attn``,
    ``feed_forward``), or with ``collapse`` one node per sublayer. All positions go through
    each sublayer at once, so the drawing does not grow with ``steps``; the shapes do."""
    tg.manual_seed(seed)
    layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward=2 * d_model, dropout=0.0)
    encoder = TransformerEncoder(layer, num_layers)
    x = tg.Variable(np.random.default_rng(seed).standard_normal((steps, batch, d_model))
                    .astype(np.float32), name="x")
    output = encoder(x, mask=generate_square_subsequent_mask(steps), is_causal=True)
    loss = (output * output).mean()
    loss.name = "loss"
    loss.backward(retain_grad=True)
    return viz.make_dot(loss, params=dict(encoder.named_parameters()), collapse=collapse)


def wavenet_graph(steps=3, *, channels=2, num_layers=3, batch=2, collapse=False, seed=0):
    """The drawing of loss = mean(skip sum²) for a ``num_layers``-block WaveNet (dilations 1, 2,
    4, ...) over ``steps`` positions: one cluster per residual block, or with ``collapse`` one
    node per block. As for the Transformer, the drawing does not grow with ``steps``."""
    tg.manual_seed(seed)
    net = WaveNet(channels, num_layers)
    x = tg.Variable(np.random.default_rng(seed).standard_normal((batch, channels, steps))
                    .astype(np.float32), name="x")
    output = net(x)
    loss = (output * output).mean()
    loss.name = "loss"
    loss.backward(retain_grad=True)
    return viz.make_dot(loss, params=dict(net.named_parameters()), collapse=collapse)


def draw_unrolled(model, steps, path, *, collapse=False, window=None, time="right"):
    """Write the drawing of :func:`unrolled_graph` to ``path`` (.svg, .png, .pdf or .dot)."""
    return viz.render(unrolled_graph(model, steps, collapse=collapse, window=window, time=time), path)
