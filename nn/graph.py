"""The computation graph of a small unrolled recurrent network (or a small causal Transformer
encoder, or a small WaveNet), for `tensorgrad graph`."""

import graphviz
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


def wavenet_dilations(net, steps):
    """The notes' diagram of the dilations of ``net`` (a :class:`nn.WaveNet`) over ``steps``
    positions, as a ``graphviz.Digraph``: which positions of the row below each position of
    each block reads.

    One row of nodes for the input and one for each block's output, from the bottom up;
    block k (dilation d, kernel size K) reads positions t, t - d, ..., t - (K-1)·d of the row
    below at position t, drawn as edges, and nothing from before the sequence (its causal
    padding is zeros). Time runs left to right on dot's rank axis, so the columns stand in
    order; in each column the edge from t to t is a flat edge, which dot keeps in its
    direction, so the rows stand in order too.
    """
    blocks = list(net.children())
    names = ["input"] + [f"dilation {block.dilated.dilation[0]}" for block in blocks]
    dot = graphviz.Digraph("wavenet", graph_attr={"rankdir": "LR", "fontname": "Helvetica", "nodesep": "0.3"},
                           node_attr={"fontname": "Helvetica", "fontsize": "9", "shape": "circle",
                                      "width": "0.3", "fixedsize": "true", "style": "filled",
                                      "fillcolor": "#fff2cc"},
                           edge_attr={"arrowsize": "0.5"})
    for row, name in enumerate(names):  # a label at the start of each row, in a column of their own
        dot.body.append(f'\tlabel{row} [label="{name}" class=row_label shape=plaintext '
                        f'fixedsize=false group=row{row}]\n')
        dot.body.append(f"\tlabel{row} -> n{row}_0 [style=invis weight=10]\n")
        for t in range(steps):
            fill = ' fillcolor="#cfe2f3"' if row == 0 else ""
            dot.body.append(f'\tn{row}_{t} [label="{t}" class=position group=row{row}{fill}]\n')
        # an invisible edge between neighbours keeps each row straight
        dot.body += [f"\tn{row}_{t - 1} -> n{row}_{t} [style=invis weight=10]\n" for t in range(1, steps)]
    labels = [f"label{row}" for row in reversed(range(len(names)))]  # a flat edge runs top to bottom
    dot.body.append(f"\t{{rank=same; {' -> '.join(labels)} [style=invis]}}\n")
    for k, block in enumerate(blocks, start=1):
        (dilation,), (kernel_size,) = block.dilated.dilation, block.dilated.kernel_size
        for t in range(steps):
            dot.body.append(f"\t{{rank=same; n{k}_{t} -> n{k - 1}_{t} [dir=back]}}\n")  # drawn upwards
            dot.body += [f"\tn{k - 1}_{t - j * dilation} -> n{k}_{t}\n"
                         for j in range(1, kernel_size) if t - j * dilation >= 0]
    return dot


def draw_unrolled(model, steps, path, *, collapse=False, window=None, time="right"):
    """Write the drawing of :func:`unrolled_graph` to ``path`` (.svg, .png, .pdf or .dot)."""
    return viz.render(unrolled_graph(model, steps, collapse=collapse, window=window, time=time), path)
