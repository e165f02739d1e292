"""tensorgrad.viz: the unfolded layout, read back from Graphviz's own layout (``dot -Tjson``).

The steps of a recurrent layer must stand in time order, whatever dot's heuristics do,
each with its own slice of the input; the shared weights drawn once; a long sequence
folded to the stated number of nodes. These tests lay the drawings out with the real
``dot`` and read the positions back.
"""

import html
import itertools
import json
import re
import shutil
from collections import defaultdict

import numpy as np
import pytest
from user_cells import MinimalGatedUnit

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from nn.graph import transformer_graph, wavenet_dilations, wavenet_graph
from tensorgrad import viz

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

_STEP = re.compile(r"(?:(.+)/)?(\w+)=(\d+)")


class Layout:
    """The objects of ``dot -Tjson``: clusters with their boxes, nodes with their centres."""

    def __init__(self, digraph):
        self.source = digraph.source
        layout = json.loads(digraph.pipe(format="json"))
        objects = layout["objects"]
        self.clusters, self.nodes = {}, {}
        for item in objects:
            if "bb" in item and item["name"].startswith("cluster_"):
                x0, y0, x1, y1 = map(float, item["bb"].split(","))
                members = {objects[i]["name"] for i in item.get("nodes", [])}
                self.clusters[item["name"]] = dict(item, box=(x0, y0, x1, y1), members=members)
            elif "pos" in item:
                x, y = map(float, item["pos"].split(","))
                self.nodes[item["name"]] = dict(item, centre=(x, y))
        self.edges = [(objects[e["tail"]]["name"], objects[e["head"]]["name"], e)
                      for e in layout.get("edges", [])]

    def steps(self, key="t"):
        """{row scope: {index: cluster}} of the step clusters (tooltip ``row/key=index``)."""
        rows = {}
        for cluster in self.clusters.values():
            match = _STEP.fullmatch(cluster.get("tooltip", ""))
            if match and match[2] == key:
                rows.setdefault(match[1] or "", {})[int(match[3])] = cluster
        return rows

    def lines(self, node):
        """The lines of a node's label (a plain one, or an HTML table of one line a row)."""
        label = self.nodes[node]["label"]
        if label.startswith("<"):
            return [html.unescape(text) for text in re.findall(r"<td>([^<]*)</td>", label)]
        return label.split("\\n")

    def named(self, name, kind=None):
        return [key for key, node in self.nodes.items() if node["label"].split("\\n")[0] == name
                and (kind is None or node.get("class") == kind)]

    def inside(self, node, cluster):
        x, y = self.nodes[node]["centre"]
        x0, y0, x1, y1 = cluster["box"]
        return node in cluster["members"] and x0 <= x <= x1 and y0 <= y <= y1


def _brightness(fill):
    return sum(int(fill[i:i + 2], 16) for i in (1, 3, 5))


def centre(cluster, axis):
    x0, y0, x1, y1 = cluster["box"]
    return (x0 + x1) / 2 if axis == 0 else (y0 + y1) / 2


def recurrent_loss(rng, layer, steps):
    x = tg.Variable(rng.standard_normal((steps, 2, layer.input_size)).astype(np.float32), name="x")
    output, _ = layer(x)
    loss = (output * output).mean()
    loss.backward(retain_grad=True)
    return loss


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
def test_steps_stand_in_time_order(rng, mode, layers, bidirectional):
    steps = 4
    tg.manual_seed(0)
    layer = getattr(nn, mode)(3, 4, num_layers=layers, bidirectional=bidirectional)
    params = dict(layer.named_parameters())
    loss = recurrent_loss(rng, layer, steps)
    for time, axis, sign in [("right", 0, 1), ("down", 1, -1)]:  # dot's y grows upwards
        layout = Layout(viz.make_dot(loss, params=params, time=time))
        rows = layout.steps()
        assert len(rows) == layers * (2 if bidirectional else 1)
        for row, clusters in rows.items():
            assert sorted(clusters) == list(range(steps))
            centres = [sign * centre(clusters[t], axis) for t in range(steps)]
            assert centres == sorted(centres) and len(set(centres)) == steps, (row, time, centres)
    # the state of a reverse direction runs from step t + 1 to step t: right to left
    for row, clusters in layout.steps().items():
        state_edges = [(tail, head) for tail, head, _ in layout.edges
                       for t in range(steps - 1)
                       if {tail, head} <= clusters[t]["members"] | clusters[t + 1]["members"]
                       and not ({tail, head} <= clusters[t]["members"]
                                or {tail, head} <= clusters[t + 1]["members"])]
        assert state_edges
        backwards = {"dir=back" in line for line in layout.source.splitlines()
                     for tail, head in state_edges if re.match(rf"\s*{tail} -> {head}\b", line)}
        assert backwards == {row.endswith(".reverse")}


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_collapsed_and_folded_steps_stand_in_time_order(rng, mode):
    steps = 12
    tg.manual_seed(0)
    layer = getattr(nn, mode)(3, 4, num_layers=2, bidirectional=True)
    loss = recurrent_loss(rng, layer, steps)
    for options in [{"collapse": True}, {"collapse": True, "steps": slice(4, 7)}, {"steps": slice(4, 7)}]:
        layout = Layout(viz.make_dot(loss, **options))
        rows = {}  # row -> [(first step, x centre)] of the step nodes and clusters
        for node in layout.nodes.values():
            if node.get("class") in ("scope", "folded"):
                row, first = _STEP.fullmatch(node["tooltip"]).group(1, 3)
                rows.setdefault(row, []).append((int(first), node["centre"][0]))
        for row, clusters in layout.steps().items():
            rows.setdefault(row, []).extend((t, centre(c, 0)) for t, c in clusters.items())
        assert len(rows) == 4
        for row, placed in rows.items():
            assert len(placed) == (steps if options.get("collapse") and "steps" not in options else 5)
            xs = [x for _, x in sorted(placed)]
            assert xs == sorted(xs) and len(set(xs)) == len(xs), (options, row, sorted(placed))


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_each_step_holds_its_own_slice_and_weights_are_drawn_once(rng, mode):
    steps, layers = 3, 2
    tg.manual_seed(1)
    layer = getattr(nn, mode)(3, 4, num_layers=layers, bidirectional=True)
    params = dict(layer.named_parameters())
    loss = recurrent_loss(rng, layer, steps)
    layout = Layout(viz.make_dot(loss, params=params))
    for clusters in layout.steps().values():
        for cluster in clusters.values():
            (piece,) = [n for n in cluster["members"] if layout.nodes[n]["label"].startswith("x W_ihᵀ + b")]
            assert layout.inside(piece, cluster)  # placed and laid out in its own step's box
            consumers = {head for tail, head, _ in layout.edges if tail == piece}
            assert consumers and consumers <= cluster["members"]  # and used there
    for name in params:
        assert len(layout.named(name, "parameter")) == 1  # each weight once
    for row, clusters in layout.steps().items():  # and a marker of W_hh in each step of its row
        suffix = row.split(".")[1].replace("l", "_l", 1) + ("_reverse" if row.endswith("reverse") else "")
        (weight,) = layout.named("weight_hh" + suffix, "parameter")
        markers = layout.named("weight_hh" + suffix, "marker")
        holding = sorted(t for m in markers for t, c in clusters.items() if layout.inside(m, c))
        assert holding == list(range(steps))
        shared = [e for e in layout.edges if e[0] == weight]  # one edge, to the row
        assert len(shared) == 1 and shared[0][2]["headlabel"] == f"×{steps}"


def elman(rng, steps, hidden=3):
    """h_{t+1} = tanh(x_t Wx + h_t Wh + b), one scope t={t} per step; loss = Σ h_T²."""
    params = {name: tg.Variable(rng.standard_normal(shape).astype(np.float32) * 0.5, name=name)
              for name, shape in [("Wx", (2, hidden)), ("Wh", (hidden, hidden)), ("b", (hidden,))]}
    h = tg.Variable(np.zeros((1, hidden), np.float32), name="h0")
    states = []
    for t in range(steps):
        x = tg.Variable(rng.standard_normal((1, 2)).astype(np.float32), name=f"x{t}", requires_grad=False)
        with tg.scope(f"t={t}"):
            h = F.tanh(x @ params["Wx"] + h @ params["Wh"] + params["b"])
        h.name = f"h{t + 1}"
        states.append(h)
    return (h * h).sum(), params, states


def test_a_long_sequence_folds_to_the_stated_node_count(rng):
    loss, params, states = elman(rng, 100)
    loss.backward(retain_grad=True)
    dot = viz.make_dot(loss, params=params, steps=slice(40, 43))
    layout = Layout(dot)
    # 3 steps drawn: 5 Functions, their 5 outputs, x_t and markers of Wx, Wh, b: 14 each;
    # 3 parameters; 2 folded columns, each with its 3 markers; h40, the state the first
    # folded column hands to step 40; and mul, its output, sum and the loss.
    assert len(layout.nodes) == 3 * 14 + 3 + 2 * (1 + 3) + 1 + 4 == 58
    assert sorted(int(c["tooltip"][2:]) for c in layout.clusters.values() if "tooltip" in c) == [40, 41, 42]
    folds = [key for key, n in layout.nodes.items() if n.get("class") == "folded"]
    before, after = sorted(folds, key=lambda key: layout.nodes[key]["centre"][0])
    assert layout.lines(before)[:2] == ["t=0 … 39", "40 steps, 200 ops"]
    assert layout.lines(after)[:2] == ["t=43 … 99", "57 steps, 285 ops"]
    # the gradient flowing through: from the first step's state to the last one's, and a
    # strip of the colours of every step's
    first, last = (float(v) for v in re.findall(r"\d\.\de[-+]\d+", layout.lines(before)[2]))
    assert first == pytest.approx(np.linalg.norm(states[0].grad.data), rel=0.06)
    assert last == pytest.approx(np.linalg.norm(states[39].grad.data), rel=0.06)
    (h40,) = layout.named("h40")
    assert h40 not in {m for c in layout.clusters.values() for m in c["members"] if "tooltip" in c}
    assert layout.nodes[before]["centre"][0] < layout.nodes[h40]["centre"][0] < min(
        centre(c, 0) for c in layout.clusters.values() if "tooltip" in c)
    steps = [c for c in layout.clusters.values() if "tooltip" in c]
    assert layout.nodes[after]["centre"][0] > max(centre(c, 0) for c in steps)
    strip = [_brightness(fill) for fill in re.findall(r'bgcolor="(#\w+)"', layout.nodes[before]["label"])]
    assert len(strip) == 40  # a cell a step, coloured by its state's gradient norm
    norms = [np.linalg.norm(h.grad.data) for h in states[:40]]
    assert [strip[i] for i in np.argsort(norms)] == sorted(strip)  # brighter for larger norms
    assert strip[0] < strip[-1]  # the gradient vanishes back in time


def test_a_long_lstm_folds_like_a_short_one(rng):
    tg.manual_seed(2)
    layer = nn.LSTM(3, 4)
    params = dict(layer.named_parameters())
    short = Layout(viz.make_dot(recurrent_loss(rng, layer, 4), params=params))
    long = Layout(viz.make_dot(recurrent_loss(rng, layer, 100), params=params, steps=slice(48, 52)))
    # the same 4 steps drawn, without h_0 and c_0 (folded with step 0), with the 2 folded
    # columns, the h and c that the first hands on, a marker of each of W_hh, the unbind
    # that slices the sequence and the stack that gathers the outputs in each, and the c
    # of step 51, which the folded steps read (the last c of the short one is unused: freed)
    assert len(long.nodes) == len(short.nodes) - 2 + 2 + 2 + 2 * 3 + 1
    collapsed = Layout(viz.make_dot(recurrent_loss(rng, layer, 100), params=params, collapse=True))
    assert len([n for n in collapsed.nodes.values() if n.get("class") == "scope"]) == 100


def test_heads_are_columns_in_order_with_their_share_of_the_projection(rng):
    x = tg.Variable(rng.standard_normal((2, 8)).astype(np.float32), name="x", requires_grad=False)
    W = tg.Variable(rng.standard_normal((8, 8)).astype(np.float32), name="W")
    Wo = tg.Variable(rng.standard_normal((2, 2)).astype(np.float32), name="Wo")
    with tg.scope("attn"):
        parts = F.split(x @ W, 4, axis=1)
        heads = []
        for h in range(4):
            with tg.scope(f"head={h}"):
                heads.append(F.tanh(parts[h] * parts[h]) @ Wo)
        out = F.concat(heads, axis=1)
    loss = out.sum()
    layout = Layout(viz.make_dot(loss, params={"W": W, "Wo": Wo}))
    (row,) = layout.steps("head").values()
    centres = [centre(row[h], 0) for h in range(4)]
    assert centres == sorted(centres)
    for cluster in row.values():
        markers = {m for m in cluster["members"] if layout.nodes[m].get("class") == "marker"}
        # its share of the projection: the Variable the split (a marker of it) hands this head
        (piece,) = [n for n in cluster["members"] if layout.nodes[n].get("class") == "intermediate"
                    and {tail for tail, head, _ in layout.edges if head == n} <= markers]
        assert layout.inside(piece, cluster)
        assert len([m for m in cluster["members"] if layout.nodes[m]["label"] == "Wo"]) == 1
    assert len(layout.named("Wo", "parameter")) == 1 and len(layout.named("W", "parameter")) == 1


def test_heads_inside_time_steps_stay_in_their_step(rng):
    W = tg.Variable(rng.standard_normal((2, 2)).astype(np.float32), name="W")
    h = tg.Variable(np.zeros((1, 2), np.float32), name="h0")
    for t in range(4):
        x = tg.Variable(rng.standard_normal((1, 2)).astype(np.float32), requires_grad=False)
        with tg.scope(f"t={t}"):
            heads = []
            for k in range(2):
                with tg.scope(f"head={k}"):
                    heads.append(F.tanh((x + h) @ W))
            h = heads[0] + heads[1]
    layout = Layout(viz.make_dot(h.sum(), params={"W": W}))
    (steps,) = layout.steps().values()
    centres = [centre(steps[t], 0) for t in range(4)]
    assert centres == sorted(centres)
    for head in layout.clusters.values():  # each head's box inside its step's box
        match = re.fullmatch(r"t=(\d+)/head=\d", head.get("tooltip", ""))
        if match:
            x0, y0, x1, y1 = steps[int(match[1])]["box"]
            assert x0 <= head["box"][0] <= head["box"][2] <= x1


def test_a_dilated_causal_stack_lines_up_in_time(rng):
    """WaveNet's picture: layer k reads layer k - 1 at t and t - 2ᵏ."""
    steps, layers = 8, 3
    W = [tg.Variable(rng.standard_normal((2, 2, 2)).astype(np.float32), name=f"W{k}") for k in range(layers)]
    below = [tg.Variable(rng.standard_normal((1, 2)).astype(np.float32), name=f"x{t}", requires_grad=False)
             for t in range(steps)]
    for k in range(layers):
        dilation, above = 2 ** k, []
        with tg.scope(f"conv.l{k}"):
            for t in range(steps):
                with tg.scope(f"t={t}"):
                    total = below[t] @ W[k][0]
                    if t >= dilation:  # causal: nothing from before the sequence
                        total = total + below[t - dilation] @ W[k][1]
                    above.append(F.tanh(total))
        below = above
    loss = F.stack(below).sum()
    layout = Layout(viz.make_dot(loss))
    rows = layout.steps()
    assert sorted(rows) == [f"conv.l{k}" for k in range(layers)]
    for t in range(steps):  # each time step is one column through the layers
        spans = [rows[f"conv.l{k}"][t]["box"] for k in range(layers)]
        assert max(s[0] for s in spans) < min(s[2] for s in spans)
    for k in range(1, layers):  # and the dilated inputs are drawn, from t - 2ᵏ to t
        lower, upper = rows[f"conv.l{k - 1}"], rows[f"conv.l{k}"]
        reach = {(s, t) for tail, head, _ in layout.edges for s in lower for t in upper
                 if tail in lower[s]["members"] and head in upper[t]["members"]}
        assert reach == {(t, t) for t in range(steps)} | {(t - 2 ** k, t) for t in range(2 ** k, steps)}


def test_bad_layout_arguments(rng):
    loss, params, _ = elman(rng, 3)
    with pytest.raises(TypeError, match=r"make_dot: steps must be a slice"):
        viz.make_dot(loss, steps=3)
    with pytest.raises(TypeError, match=r"make_dot: steps must be a slice"):
        viz.make_dot(loss, steps=slice(0, 3, 2))
    with pytest.raises(ValueError, match=r"make_dot: time must be 'right' or 'down', got 'up'"):
        viz.make_dot(loss, time="up")
    with pytest.raises(ValueError, match=r"make_dot: shared must be 'fold' or 'edges'"):
        viz.make_dot(loss, shared="none")


def row_spans(layout, axis):
    """{row scope: (low, high)} of the centres of the row's steps along ``axis``: its step
    clusters, and the nodes of its collapsed or folded steps."""
    spans = {}
    for row, clusters in layout.steps().items():
        spans.setdefault(row, []).extend(centre(c, axis) for c in clusters.values())
    for node in layout.nodes.values():
        if node.get("class") in ("scope", "folded"):
            spans.setdefault(_STEP.fullmatch(node["tooltip"])[1], []).append(node["centre"][axis])
    return {row: (min(values), max(values)) for row, values in spans.items()}


def assert_rows_stacked(layout, axis, expected):
    """The rows stand apart along ``axis`` (0: x, 1: dot's y, growing upwards), in the order
    ``expected`` from low to high: every step of one below every step of the next."""
    spans = row_spans(layout, axis)
    assert sorted(spans) == sorted(expected)
    for lower, upper in itertools.pairwise(expected):
        assert spans[lower][1] < spans[upper][0], (lower, upper, spans)


def stacking(prefix, layers, bidirectional):
    """The rows in recording order: layer 0, its reverse direction, layer 1, ..."""
    return [f"{prefix}.l{k}{direction}" for k in range(layers)
            for direction in ([""] + ([".reverse"] if bidirectional else []))]


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(("layers", "bidirectional"),
                         [(2, False), (3, False), (1, True), (2, True), (3, True)])
@pytest.mark.parametrize(("steps", "hidden", "seed"), [(2, 2, 3), (5, 6, 4), (7, 3, 8)])
def test_rows_stand_in_recording_order_from_the_bottom_up(mode, layers, bidirectional, steps, hidden, seed):
    """Layer 0 at the bottom (x below s below y, as the notes draw it), each layer's reverse
    direction just above its forward one; with time="down", the same from left to right."""
    tg.manual_seed(seed)
    layer = getattr(nn, mode)(3, hidden, num_layers=layers, bidirectional=bidirectional)
    params = dict(layer.named_parameters())
    loss = recurrent_loss(np.random.default_rng(seed), layer, steps)
    expected = stacking(mode.lower(), layers, bidirectional)
    for options in [{}, {"collapse": True}, {"steps": slice(1, 3)}, {"shared": "edges"}, {"time": "down"}]:
        layout = Layout(viz.make_dot(loss, params=params, **options))
        assert_rows_stacked(layout, 0 if options.get("time") == "down" else 1, expected)


@pytest.mark.parametrize("cell", ["user", "LSTMCell"])
def test_a_recurrent_layer_of_a_users_cell_is_drawn_unfolded(rng, cell):
    steps, layers = 4, 2
    tg.manual_seed(3)
    make = MinimalGatedUnit if cell == "user" else nn.LSTMCell
    layer = nn.Recurrent(make(6, 3), num_layers=layers, bidirectional=True)  # 6 = 2·3 inputs above layer 0
    x = tg.Variable(rng.standard_normal((steps, 2, 6)).astype(np.float32), name="x")
    output, _ = layer(x)
    loss = (output * output).mean()
    loss.backward(retain_grad=True)
    params = dict(layer.named_parameters())
    expected = stacking("recurrent", layers, True)
    for time, axis, sign in [("right", 0, 1), ("down", 1, -1)]:
        layout = Layout(viz.make_dot(loss, params=params, time=time))
        rows = layout.steps()
        assert sorted(rows) == sorted(expected)
        for clusters in rows.values():  # each row's steps in time order along the time axis
            centres = [sign * centre(clusters[t], axis) for t in range(steps)]
            assert centres == sorted(centres) and len(set(centres)) == steps
        assert_rows_stacked(layout, 1 - axis, expected)
        for name in params:  # each weight drawn once, and a marker of it in every step of its row
            (weight,) = layout.named(name, "parameter")
            row = "recurrent.l" + name[len("cell_l"):].split(".")[0].replace("_", ".")
            markers = layout.named(name, "marker")
            held = sorted(t for m in markers for t, c in rows[row].items() if layout.inside(m, c))
            assert held == list(range(steps)), (name, row)
            assert [e[2]["headlabel"] for e in layout.edges if e[0] == weight] == [f"×{steps}"]


def test_the_dilations_of_a_wavenet_are_the_notes_diagram(rng):
    steps, layers = 12, 3
    tg.manual_seed(4)
    net = nn.WaveNet(2, layers)
    layout = Layout(wavenet_dilations(net, steps))
    position = {}  # (row, t) -> centre
    for key, node in layout.nodes.items():
        if node.get("class") == "position":
            row, t = map(int, key[1:].split("_"))
            position[row, t] = node["centre"]
    assert sorted(position) == [(row, t) for row in range(layers + 1) for t in range(steps)]
    for row in range(layers + 1):  # each row straight, time left to right
        assert len({position[row, t][1] for t in range(steps)}) == 1
        xs = [position[row, t][0] for t in range(steps)]
        assert xs == sorted(xs) and len(set(xs)) == steps
    heights = [position[row, 0][1] for row in range(layers + 1)]
    assert heights == sorted(heights) and len(set(heights)) == layers + 1  # the input at the bottom
    reads = defaultdict(set)  # (row, t) -> the positions of the row below it reads
    for tail, head, edge in layout.edges:
        if tail.startswith("n") and head.startswith("n") and edge.get("style") != "invis":
            (a, s), (b, t) = (tuple(map(int, n[1:].split("_"))) for n in (tail, head))
            upper, lower = ((a, s), (b, t)) if a > b else ((b, t), (a, s))
            reads[upper].add(lower)
    for k in range(1, layers + 1):  # kernel size 2: block k reads t and t - 2^(k-1)
        for t in range(steps):
            assert reads[k, t] == {(k - 1, s) for s in (t, t - 2 ** (k - 1)) if s >= 0}
    # what the top row reaches is what the network's output at t depends on
    x = tg.Variable(rng.standard_normal((1, 2, steps)).astype(np.float32))
    for t in range(steps):
        x.grad = None
        net(x)[..., t].sum().backward()
        reached = {(layers, t)}
        for _ in range(layers):
            reached |= {below for node in reached for below in reads[node]}
        depends_on = set(np.flatnonzero(np.abs(x.grad.data).sum(axis=(0, 1))))
        assert {s for row, s in reached if row == 0} == depends_on


@pytest.mark.parametrize(("model", "scope", "sublayers"), [
    ("transformer", "layers.{}", ["self_attn", "feed_forward"]),
    ("wavenet", "wavenet.{}", []),
])
def test_layer_clusters_stand_in_data_flow_order_with_their_weights_once(model, scope, sublayers):
    """Layer i + 1 reads layer i's output: dot's ranks put it lower (the rank axis runs down)."""
    layers = 3
    graph = transformer_graph(steps=4, num_layers=layers) if model == "transformer" else wavenet_graph(
        steps=4, num_layers=layers)
    layout = Layout(graph)
    clusters = {c["tooltip"]: c for c in layout.clusters.values() if "tooltip" in c}
    heights = [centre(clusters[scope.format(i)], 1) for i in range(layers)]
    assert heights == sorted(heights, reverse=True) and len(set(heights)) == layers
    for i in range(layers):  # the sublayers in order inside their layer's box
        outer = clusters[scope.format(i)]["box"]
        inner = [clusters[f"{scope.format(i)}/{name}"] for name in sublayers]
        assert all(outer[0] <= c["box"][0] and c["box"][2] <= outer[2] and outer[1] <= c["box"][1]
                   and c["box"][3] <= outer[3] for c in inner)
        heights = [centre(c, 1) for c in inner]
        assert heights == sorted(heights, reverse=True) and len(set(heights)) == len(sublayers)
    names = [n["label"].split("\\n")[0] for n in layout.nodes.values() if n.get("class") == "parameter"]
    assert len(names) == len(set(names))  # each weight once
    assert {name.removeprefix("layers.").split(".")[0] for name in names} == {str(i) for i in range(layers)}
