"""tensorgrad.viz: the DOT drawing of known graphs, read back and counted.

``parse`` reads the DOT source into nodes (label, kind, enclosing clusters), edges and
clusters, so the tests count and follow them instead of comparing whole DOT strings.
"""

import html
import re
import shutil
from dataclasses import dataclass

import numpy as np
import pytest

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from tensorgrad import viz

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

_NODE = re.compile(r'\s*(\w+) \[label="((?:[^"\\]|\\.)*)" class=(\w+)(.*)\]$')
_EDGE = re.compile(r"\s*(\w+) -> (\w+)(?: \[(.*)\])?$")
_CLUSTER_LABEL = re.compile(r'\s*graph \[label="((?:[^"\\]|\\.)*)"( class=row)?')


@dataclass
class Node:
    label: str
    kind: str  # input, parameter, intermediate, output, function or scope
    cluster: tuple  # labels of the enclosing clusters, outermost first
    attributes: str

    @property
    def fill(self):
        return re.search(r'fillcolor="(#[0-9a-f]{6})"', self.attributes)[1]


@dataclass
class Drawing:
    nodes: dict  # node id -> Node
    edges: list  # (tail id, head id), in the direction data flows
    clusters: list  # label paths, outermost first (the boxes around a row of steps left out)
    shared: list  # (tail id, head id, label) of the edges between a row of steps and the outside
    rows: int  # boxes around a row of steps

    def ids(self, kind=None, label=None, cluster=None):
        return [key for key, node in self.nodes.items()
                if (kind is None or node.kind == kind) and (label is None or node.label == label)
                and (cluster is None or node.cluster == cluster)]

    def named(self, name):
        """The id of the one Variable whose label starts with ``name``."""
        (key,) = [key for key, node in self.nodes.items()
                  if node.label.split("\n")[0] == name and node.kind != "marker"]
        return key

    def markers(self, name):
        """The ids of the markers of ``name`` (a use of it in a step), with their clusters."""
        return {key: node.cluster for key, node in self.nodes.items() if node.kind == "marker"
                and node.label == name}

    def successors(self, key):
        return [head for tail, head in self.edges if tail == key]

    def predecessors(self, key):
        return [tail for tail, head in self.edges if head == key]


def _unescape(text):
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


def parse(dot):
    """The nodes, edges and clusters of a drawing; the invisible anchors that keep the rows
    in order (and their edges) are left out."""
    nodes, edges, clusters, path, shared, rows, anchors = {}, [], [], [], [], 0, set()
    for line in dot.source.splitlines():
        if line.strip().startswith("subgraph cluster_"):
            path.append(None)  # its label comes on the next line
        elif path and path[-1] is None and (match := _CLUSTER_LABEL.match(line)):
            if match[2]:  # the box around a row: not part of the path
                path[-1], rows = "row", rows + 1
            else:
                path[-1] = _unescape(match[1])
                clusters.append(tuple(p for p in path if p != "row"))
        elif line.strip() == "}" and path:
            path.pop()
        elif match := _EDGE.match(line):
            tail, head, attributes = match[1], match[2], match[3] or ""
            if "dir=back" in attributes:  # written against the layout's direction
                tail, head = head, tail
            if tail in anchors:
                continue
            if "lhead=" in attributes or "ltail=" in attributes:
                shared.append((tail, head, re.search(r'label="([^"]*)"', attributes)[1]))
            else:
                edges.append((tail, head))
        elif (match := _NODE.match(line)) and match[3] == "anchor":
            anchors.add(match[1])
        elif match:
            assert match[1] not in nodes, f"node {match[1]} declared twice"
            cluster = tuple(p for p in path if p != "row")
            nodes[match[1]] = Node(_unescape(match[2]), match[3], cluster, match[4])
    declared = dot.source.count(" [label=") - len(clusters) - rows - len(anchors)
    assert len(nodes) == declared, "a node line was not understood"
    assert all(tail in nodes and head in nodes for tail, head in edges + [s[:2] for s in shared])
    return Drawing(nodes, edges, clusters, shared, rows)


def _norm(label):
    """The gradient norm a Variable's label shows."""
    return float(re.search(r"\|grad\| = (\S+)", label)[1])


def _brightness(fill):
    """R + G + B of "#rrggbb": rises along the heat scale."""
    return sum(int(fill[i:i + 2], 16) for i in (1, 3, 5))


def variable(rng, shape, name=None, requires_grad=True, scale=1.0):
    data = (scale * rng.standard_normal(shape)).astype(np.float32)
    return tg.Variable(data, name=name, requires_grad=requires_grad)


# --------------------------------------------------------------------- known graphs
def mlp(rng):
    """loss = sum(tanh(x W1 + b1) W2 + b2), with x a constant input."""
    x = variable(rng, (4, 3), "x", requires_grad=False)
    params = {"W1": variable(rng, (3, 5)), "b1": variable(rng, (5,)),
              "W2": variable(rng, (5, 2)), "b2": variable(rng, (2,))}
    hidden = F.tanh(x @ params["W1"] + params["b1"])
    loss = (hidden @ params["W2"] + params["b2"]).sum()
    return loss, params


def elman(rng, steps=3, recurrent_scale=1.0):
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b) unrolled by hand, one scope per step; loss = Σ h_T²."""
    params = {"Wx": variable(rng, (3, 4)), "Wh": variable(rng, (4, 4), scale=recurrent_scale),
              "b": variable(rng, (4,))}
    h = tg.Variable(np.zeros((2, 4), np.float32), name="h0")
    hs = []
    for t in range(steps):
        x = variable(rng, (2, 3), f"x{t}", requires_grad=False)
        with tg.scope(f"t={t}"):
            h = F.tanh(x @ params["Wx"] + h @ params["Wh"] + params["b"])
        h.name = f"h{t + 1}"
        hs.append(h)
    loss = (h * h).sum()
    return loss, params, hs


LSTM_STEP_OPS = 13  # getitem, matmul, add, split; sigmoid ×3, tanh ×2, mul ×3, add


def bidirectional_lstm(rng, steps=3, layers=2, hidden=3):
    """A stand-in for a 2-layer bidirectional LSTM, scoped as a recurrent layer would be.

    Each layer and direction opens ``lstm.l{layer}.{fwd|bwd}`` (where the whole sequence's
    input projection is recorded) and, inside it, ``t={t}`` for each step.
    """
    sequence = variable(rng, (steps, 2, 2), "x", requires_grad=False)
    params = {}
    for layer in range(layers):
        outputs = {}
        for direction in ("fwd", "bwd"):
            prefix = f"l{layer}.{direction}."
            Wx = params[prefix + "Wx"] = variable(rng, (sequence.shape[-1], 4 * hidden))
            Wh = params[prefix + "Wh"] = variable(rng, (hidden, 4 * hidden))
            b = params[prefix + "b"] = variable(rng, (4 * hidden,))
            h = tg.Variable(np.zeros((2, hidden), np.float32), requires_grad=False)
            c = tg.Variable(np.zeros((2, hidden), np.float32), requires_grad=False)
            with tg.scope(f"lstm.l{layer}.{direction}"):
                projected = sequence @ Wx + b
                for t in range(steps) if direction == "fwd" else reversed(range(steps)):
                    with tg.scope(f"t={t}"):
                        i, f, g, o = F.split(projected[t] + h @ Wh, 4, axis=1)
                        c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
                        h = F.sigmoid(o) * F.tanh(c)
                    outputs[direction, t] = h
        sequence = F.stack([F.concat([outputs["fwd", t], outputs["bwd", t]], axis=1)
                            for t in range(steps)])
    return sequence.sum(), params


# --------------------------------------------------------------------- structure
def test_mlp_nodes_edges_and_kinds(rng):
    loss, params = mlp(rng)
    drawing = parse(viz.make_dot(loss, params=params))

    functions = drawing.ids("function")
    assert sorted(drawing.nodes[f].label for f in functions) == sorted(
        ["matmul", "add", "tanh", "matmul", "add", "sum"])
    kinds = [node.kind for node in drawing.nodes.values()]
    assert kinds.count("input") == 1 and kinds.count("parameter") == 4
    assert kinds.count("intermediate") == 5 and kinds.count("output") == 1  # 6 Function outputs
    assert len(drawing.edges) == 10 + 6  # one per Function input, one per Function output
    assert drawing.clusters == []
    # bipartite: data flows Variable -> Function -> Variable
    assert all((tail in functions) != (head in functions) for tail, head in drawing.edges)

    # follow the data from x to the loss, through each op in turn
    node, ops = drawing.named("x"), []
    while successors := drawing.successors(node):
        (function,) = successors
        ops.append(drawing.nodes[function].label)
        (node,) = drawing.successors(function)
    assert ops == ["matmul", "add", "tanh", "matmul", "add", "sum"]
    assert drawing.nodes[node].kind == "output"
    assert drawing.nodes[node].label == "() float32"

    assert drawing.nodes[drawing.named("x")].label == "x\n(4, 3) float32"
    assert "dashed" in drawing.nodes[drawing.named("x")].attributes  # needs no gradient
    assert drawing.nodes[drawing.named("W1")].label == "W1\n(3, 5) float32"
    b1 = drawing.named("b1")
    assert [drawing.nodes[f].label for f in drawing.successors(b1)] == ["add"]


def test_kinds_have_distinct_shapes(rng):
    loss, params = mlp(rng)
    drawing = parse(viz.make_dot(loss, params=params))
    shapes = {}
    for node in drawing.nodes.values():
        shapes.setdefault(node.kind, set()).add(re.search(r"shape=(\w+)", node.attributes)[1])
    assert all(len(s) == 1 for s in shapes.values())
    assert len(set().union(*shapes.values())) == len(shapes) == 5


def test_rnn_steps_are_clusters(rng):
    loss, params, hs = elman(rng, steps=3)
    drawing = parse(viz.make_dot(loss, params=params))

    assert drawing.clusters == [("t=0",), ("t=1",), ("t=2",)]
    for t in range(3):
        step = (f"t={t}",)
        assert len(drawing.ids("function", cluster=step)) == 5  # 2 matmul, 2 add, tanh
        assert len(drawing.ids("intermediate", cluster=step)) == 5  # their outputs
        assert drawing.nodes[drawing.named(f"x{t}")].cluster == step  # a leaf used by one step only
        # one edge carries the state from each step into the next
        crossing = [a for a, b in drawing.edges if drawing.nodes[a].cluster == step
                    and drawing.nodes[b].cluster not in (step, ())]
        assert [drawing.nodes[a].label.split("\n")[0] for a in crossing] == ([f"h{t + 1}"] if t < 2 else [])
    assert drawing.nodes[drawing.named("h0")].cluster == ("t=0",)
    for name in params:  # shared by every step: outside the clusters
        assert drawing.nodes[drawing.named(name)].cluster == ()
    for tail, head in drawing.edges:  # a Function's outputs are drawn in its cluster
        if drawing.nodes[tail].kind == "function":
            assert drawing.nodes[head].cluster == drawing.nodes[tail].cluster
    assert len(drawing.ids("function", cluster=())) == 2  # mul and sum after the loop


def test_nested_scopes_of_a_bidirectional_lstm(rng):
    loss, params = bidirectional_lstm(rng, steps=3)
    drawing = parse(viz.make_dot(loss, params=params))

    outer = [(f"lstm.l{layer}.{d}",) for layer in range(2) for d in ("fwd", "bwd")]
    assert [c for c in drawing.clusters if len(c) == 1] == outer
    inner = [c for c in drawing.clusters if len(c) == 2]
    assert len(inner) == 4 * 3 and len(drawing.clusters) == 16
    assert {c[0] for c in inner} == {o[0] for o in outer}
    assert {c[1] for c in inner} == {"t=0", "t=1", "t=2"}
    for cluster in inner:
        assert len(drawing.ids("function", cluster=cluster)) == LSTM_STEP_OPS
    for (scope,) in outer:
        # the input projection of the whole sequence sits in the layer, outside the steps
        assert sorted(drawing.nodes[f].label for f in drawing.ids("function", cluster=(scope,))) == [
            "add", "matmul"]
        layer, direction = scope.split(".")[1:]
        name = f"{layer}.{direction}.Wh"
        Wh = drawing.named(name)
        assert drawing.nodes[Wh].cluster == (scope,)  # used by every step of that direction
        # drawn once; each step has a marker of it, and one edge says how many steps use it
        assert drawing.successors(Wh) == []
        assert sorted(drawing.markers(name).values()) == [(scope, f"t={t}") for t in range(3)]
        assert [(label, drawing.nodes[head].label) for tail, head, label in drawing.shared
                if tail == Wh] == [("×3", name)]
    every = parse(viz.make_dot(loss, params=params, shared="edges"))  # or every use an edge
    assert not every.shared and not [n for n in every.nodes.values() if n.kind == "marker"]
    assert len(every.successors(every.named("l0.fwd.Wh"))) == 3


@pytest.mark.skipif(not hasattr(nn, "LSTM"), reason="nn.LSTM is not there yet")
def test_nn_lstm_two_layers_bidirectional(rng):
    steps = 3
    model = nn.LSTM(input_size=2, hidden_size=3, num_layers=2, bidirectional=True)
    output, _ = model(variable(rng, (steps, 2, 2), requires_grad=False))
    loss = output.sum()
    loss.backward(retain_grad=True)
    params = dict(model.named_parameters())
    drawing = parse(viz.make_dot(loss, params=params))

    outer = [c for c in drawing.clusters if len(c) == 1]
    assert len(outer) == 4  # layer × direction
    for (scope,) in outer:
        inner = [c[1] for c in drawing.clusters if len(c) == 2 and c[0] == scope]
        assert sorted(inner) == [f"t={t}" for t in range(steps)]
    assert len(drawing.clusters) == 4 + 4 * steps
    for name, param in params.items():  # every parameter once, named, with its gradient norm
        label = drawing.nodes[drawing.named(name)].label
        assert drawing.nodes[drawing.named(name)].kind == "parameter"
        assert _norm(label) == pytest.approx(np.linalg.norm(param.grad.data), rel=1e-2)

    collapsed = parse(viz.make_dot(loss, params=params, collapse=True))
    assert collapsed.clusters == outer
    assert len(collapsed.ids("scope")) == 4 * steps
    for step in collapsed.ids("scope"):
        node = collapsed.nodes[step]
        name, count = node.label.split("\n")
        ops = len(drawing.ids("function", cluster=node.cluster + (name,)))
        assert count == (f"{ops} ops" if ops != 1 else "1 op")


def test_one_variable_feeding_several_functions_is_drawn_once(rng):
    x = variable(rng, (3,), "x")
    y = (F.exp(x) + F.tanh(x) + x * 2.0).sum()
    drawing = parse(viz.make_dot(y))
    (x_node,) = [k for k, n in drawing.nodes.items() if n.label.startswith("x\n")]
    assert sorted(drawing.nodes[f].label for f in drawing.successors(x_node)) == ["exp", "mul", "tanh"]

    with tg.scope("features"):
        z = F.exp(x) + F.tanh(x) + x * 2.0
    drawing = parse(viz.make_dot(z, collapse=True))  # into the collapsed scope: one edge
    assert [drawing.nodes[s].kind for s in drawing.successors(drawing.named("x"))] == ["scope"]

    square = (x * x).sum()  # both operands of mul: one edge per operand
    drawing = parse(viz.make_dot(square))
    x_node = drawing.named("x")
    (mul,) = set(drawing.successors(x_node))
    assert drawing.successors(x_node) == [mul, mul]


def test_outputs_leaves_and_dead_outputs(rng):
    x = variable(rng, (6,), "x")
    drawing = parse(viz.make_dot(x))  # a leaf alone
    assert [n.kind for n in drawing.nodes.values()] == ["output"] and drawing.edges == []

    a, b, c = F.split(x, 3)
    kept = b
    y = a.sum()
    del a, c  # c is never used: its weak reference dies
    drawing = parse(viz.make_dot(y))
    (split,) = drawing.ids("function", label="split")
    assert len(drawing.successors(split)) == 2  # a, and kept, which is still alive
    assert len(drawing.ids(label="(2,) float32")) == 2

    drawing = parse(viz.make_dot(y, kept))  # several outputs
    assert len(drawing.ids("output")) == 2


def test_long_chain_needs_no_recursion(rng):
    x = variable(rng, (2,), "x")
    y = x
    for _ in range(3000):
        y = F.tanh(y)
    drawing = parse(viz.make_dot(y))
    assert len(drawing.ids("function")) == 3000 and len(drawing.nodes) == 6001
    assert len(drawing.edges) == 6000


def test_source_is_deterministic_and_ids_unique(rng):
    loss, params, _ = elman(rng)
    first, second = viz.make_dot(loss, params=params).source, viz.make_dot(loss, params=params).source
    assert first == second
    declared = re.findall(r"^\s*([vfsmu]\d+) \[label=", first, re.M)
    assert len(declared) == len(set(declared))


# --------------------------------------------------------------------- names
class Affine(nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.weight = nn.Parameter(variable(rng, (3, 2)).data)
        self.bias = nn.Parameter(np.zeros(2, np.float32))

    def forward(self, x):
        return x @ self.weight + self.bias


class Net(nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.encoder = Affine(rng)

    def forward(self, x):
        return F.tanh(self.encoder(x)).sum()


@pytest.mark.parametrize("form", [dict, list, "generator"])
def test_params_name_the_parameters(rng, form):
    net = Net(rng)
    loss = net(variable(rng, (4, 3), requires_grad=False))
    params = net.named_parameters() if form == "generator" else form(net.named_parameters())
    drawing = parse(viz.make_dot(loss, params=params))
    assert sorted(drawing.nodes[k].label.split("\n")[0] for k in drawing.ids("parameter")) == [
        "encoder.bias", "encoder.weight"]
    assert drawing.ids(label="encoder.weight\n(3, 2) float32")


def test_names_from_variables_and_params_override(rng):
    W = variable(rng, (2, 2), "W")
    y = (W @ W).sum()
    assert parse(viz.make_dot(y)).ids("input", label="W\n(2, 2) float32")  # no params: an input
    drawing = parse(viz.make_dot(y, params={"layer.W": W}))
    assert drawing.ids("parameter", label="layer.W\n(2, 2) float32")


def test_bad_arguments_are_clear_errors(rng):
    W = variable(rng, (2,))
    with pytest.raises(TypeError, match="at least one output"):
        viz.make_dot()
    with pytest.raises(TypeError, match="must be Variables, got ndarray"):
        viz.make_dot(W.data)
    with pytest.raises(TypeError, match=r"params\['w'\] must be a Variable, got ndarray"):
        viz.make_dot(W.sum(), params={"w": W.data})


def test_labels_are_escaped(rng):
    odd = 'x<eos>&"q"\\'
    y = F.exp(variable(rng, (2,), odd)).sum()
    drawing = parse(viz.make_dot(y))
    assert drawing.named(odd)
    with tg.scope('"quoted\\'):
        z = F.exp(variable(rng, (2,)))
    assert parse(viz.make_dot(z)).clusters == [('"quoted\\',)]


# --------------------------------------------------------------------- collapse
def test_collapse_draws_each_step_as_one_node(rng):
    loss, params, hs = elman(rng, steps=3)
    full = parse(viz.make_dot(loss, params=params))
    drawing = parse(viz.make_dot(loss, params=params, collapse=True))

    assert drawing.clusters == []
    steps = drawing.ids("scope")
    assert [drawing.nodes[s].label for s in steps] == ["t=0\n5 ops", "t=1\n5 ops", "t=2\n5 ops"]
    # per step, 5 Functions and 4 of their 5 outputs (all but h_t) are hidden
    assert len(drawing.nodes) == len(full.nodes) - 3 * (5 + 4) + 3
    assert not drawing.ids("function", cluster=("t=1",))
    for t, step in enumerate(steps):
        entering = sorted(drawing.nodes[v].label.split("\n")[0] for v in drawing.predecessors(step))
        assert entering == sorted(["Wx", "Wh", "b", f"x{t}", f"h{t}"])  # each Variable once
        assert [drawing.nodes[v].label.split("\n")[0] for v in drawing.successors(step)] == [f"h{t + 1}"]
    assert drawing.nodes[drawing.named("h0")].cluster == ()  # its step is a node now


def test_collapse_keeps_outer_scopes_as_clusters(rng):
    loss, params = bidirectional_lstm(rng, steps=3)
    full = parse(viz.make_dot(loss, params=params))
    drawing = parse(viz.make_dot(loss, params=params, collapse=True))

    assert drawing.clusters == [c for c in full.clusters if len(c) == 1]
    steps = drawing.ids("scope")
    assert len(steps) == 12
    for step in steps:
        node = drawing.nodes[step]
        name, count = node.label.split("\n")
        assert count == f"{len(full.ids('function', cluster=node.cluster + (name,)))} ops"
        assert len(node.cluster) == 1  # inside its layer's cluster
        # entering: the projected sequence, Wh, and the previous h and c
        assert len(drawing.predecessors(step)) == 4
        # leaving: h and c, but only h after the last step of a direction
        last = name == ("t=2" if node.cluster[0].endswith("fwd") else "t=0")
        assert len(drawing.successors(step)) == (1 if last else 2)
    # the input projections stay drawn as Functions in their layer's cluster
    assert len(drawing.ids("function")) == len(full.ids("function")) - 12 * LSTM_STEP_OPS


# --------------------------------------------------------------------- gradients
def test_gradient_norms_and_colours(rng):
    loss, params, hs = elman(rng, steps=4, recurrent_scale=0.1)  # a small Wh: vanishing gradients
    assert "|grad|" not in viz.make_dot(loss).source  # nothing to show before backward
    assert "|grad|" not in viz.make_dot(loss, show_grad=True).source
    loss.backward(retain_grad=True)
    drawing = parse(viz.make_dot(loss, params=params))

    for t, h in enumerate(hs, 1):
        label = drawing.nodes[drawing.named(f"h{t}")].label
        assert _norm(label) == pytest.approx(np.linalg.norm(h.grad.data), rel=1e-2)
    variables = [k for k, n in drawing.nodes.items() if n.kind not in ("function", "marker")]
    with_grad = [k for k in variables if "|grad|" in drawing.nodes[k].label]
    constants = [k for k in variables if "dashed" in drawing.nodes[k].attributes]  # x_t
    assert sorted(with_grad + constants) == sorted(variables)

    norms = sorted((_norm(drawing.nodes[k].label), drawing.nodes[k].fill) for k in with_grad)
    assert norms[0][1] == "#000004" and norms[-1][1] == "#fcffa4"  # the ends of the scale
    brightness = [_brightness(fill) for _, fill in norms]
    assert brightness == sorted(brightness)  # darker for smaller norms
    # the gradient vanishes backwards in time, and the colours show it
    trail = [drawing.nodes[drawing.named(f"h{t}")] for t in range(4, -1, -1)]
    assert [_norm(n.label) for n in trail] == sorted((_norm(n.label) for n in trail), reverse=True)
    assert [_brightness(n.fill) for n in trail] == sorted((_brightness(n.fill) for n in trail), reverse=True)

    assert "|grad|" not in viz.make_dot(loss, params=params, show_grad=False).source


def test_without_retain_grad_only_leaves_show_gradients(rng):
    loss, params, hs = elman(rng)
    loss.backward()
    drawing = parse(viz.make_dot(loss, params=params))
    shown = {n.label.split("\n")[0] for n in drawing.nodes.values() if "|grad|" in n.label}
    assert shown == {"Wx", "Wh", "b", "h0"}


def test_zero_and_nonfinite_gradients(rng):
    x = variable(rng, (3,), "x")
    y = variable(rng, (3,), "y")
    z = variable(rng, (3,), "z")
    total = (x + y + z).sum()
    x.grad = tg.Variable(np.zeros(3, np.float32))
    y.grad = tg.Variable(np.array([np.nan, 1, 1], np.float32))
    z.grad = tg.Variable(np.full(3, 1e-3, np.float32))
    drawing = parse(viz.make_dot(total))
    assert drawing.nodes[drawing.named("x")].fill == "#000004"  # a zero gradient: darkest
    assert "nan" in drawing.nodes[drawing.named("y")].label
    assert drawing.nodes[drawing.named("y")].fill not in (
        drawing.nodes[drawing.named("x")].fill, drawing.nodes[drawing.named("z")].fill)
    assert drawing.nodes[drawing.named("z")].fill == "#fcffa4"  # the only finite non-zero norm


def test_colours_follow_the_logarithm_of_the_norm(rng):
    xs = [variable(rng, (4,), f"x{i}") for i in range(3)]
    total = (xs[0] + xs[1] + xs[2]).sum()
    for x, norm in zip(xs, [1e-6, 1e-3, 1.0], strict=True):
        x.grad = tg.Variable(np.full(4, norm / 2, np.float32))  # ‖grad‖₂ = norm
    drawing = parse(viz.make_dot(total))
    fills = [drawing.nodes[drawing.named(f"x{i}")].fill for i in range(3)]
    assert fills == ["#000004", "#bc3754", "#fcffa4"]  # 1e-3 is halfway on a log scale


# --------------------------------------------------------------------- rendering
@needs_dot
def test_render_svg_with_dot(rng, tmp_path):
    loss, params, _ = elman(rng)
    loss.backward(retain_grad=True)
    path = viz.render(viz.make_dot(loss, params=params), tmp_path / "graph.svg")
    svg = path.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    texts = {html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)}
    assert {"Wx", "h3", "tanh", "matmul", "t=0", "t=1", "t=2"} <= texts
    assert any(t.startswith("|grad| = ") for t in texts)


@needs_dot
def test_render_escaped_labels_and_other_formats(rng, tmp_path):
    odd = 'x<eos>&"q"\\'
    graph = viz.make_dot(F.exp(variable(rng, (2,), odd)).sum())
    svg = viz.render(graph, tmp_path / "odd.SVG").read_text(encoding="utf-8")
    assert odd in {html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)}
    assert viz.render(graph, tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    assert viz.render(graph, tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")


def test_render_dot_source_and_bad_suffix(rng, tmp_path):
    graph = viz.make_dot(F.exp(variable(rng, (2,), "x")))
    assert viz.render(graph, tmp_path / "g.dot").read_text(encoding="utf-8") == graph.source
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.pdf or \.dot"):
        viz.render(graph, tmp_path / "g.jpeg")
    assert not (tmp_path / "g.jpeg").exists()


def test_missing_dot_is_a_clear_error(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    graph = viz.make_dot(F.exp(variable(rng, (2,), "x")))
    with pytest.raises(RuntimeError) as error:
        viz.render(graph, tmp_path / "g.svg")
    assert isinstance(error.value, viz.DotNotFoundError)
    message = str(error.value)
    assert "Graphviz's 'dot' program was not found" in message
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "scripts/install-graphviz.sh" in message and ".source" in message
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no chained traceback
    assert not (tmp_path / "g.svg").exists()
    assert viz.render(graph, tmp_path / "g.dot").read_text(encoding="utf-8") == graph.source
