"""The computation graph of a small unrolled recurrent network, for `tensorgrad graph`."""

import numpy as np

import tensorgrad as tg
from nn.charlm import RECURRENT_LAYERS
from tensorgrad import viz


def unrolled_graph(model="lstm", steps=3, *, input_size=3, hidden_size=4, batch=2, collapse=False, seed=0,
                   window=None, time="right"):
    """The Graphviz drawing of loss = mean(output²) for a one-layer ``model`` over ``steps``.

    Backward has run with ``retain_grad=True``, so every node shows its gradient norm; each
    time step is a cluster (or one node, with ``collapse``), in time order; ``window`` (a
    slice) draws those steps in full and folds the others (``make_dot(..., steps=window)``).
    """
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


def draw_unrolled(model, steps, path, *, collapse=False, window=None, time="right"):
    """Write the drawing of :func:`unrolled_graph` to ``path`` (.svg, .png, .pdf or .dot)."""
    return viz.render(unrolled_graph(model, steps, collapse=collapse, window=window, time=time), path)
