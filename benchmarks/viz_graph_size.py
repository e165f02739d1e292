"""How long make_dot takes to produce the DOT source of large graphs, and how long Graphviz
takes to lay out and render a 100-step recurrent layer, and how big the picture is.

The first table's graph is a hand-unrolled Elman RNN, h_t = tanh(x_t Wx + h_{t-1} Wh + b),
with one ``tg.scope`` per step: 11 drawn nodes per step (x_t, 5 Functions and their 5
outputs). For each size it times ``make_dot(loss).source`` (best of ``--repeat`` runs)
drawn three ways: plain, with gradient norms after ``backward(retain_grad=True)``, and
collapsed.

The second table draws the graph of ``tensorgrad graph --steps N`` (a one-layer LSTM, N =
``--steps``, 100 by default) in full, collapsed (``--collapse``), and with four steps in
full and the others folded (``make_dot(..., steps=slice(48, 52))``, where make_dot has
it), and times ``dot -Tpng`` on it (best of ``--repeat``); the picture's size is the
layout's, in inches at 72 points (dot scales PNGs wider than 32,767 pixels down).

    python benchmarks/viz_graph_size.py [--sizes 1000 10000 100000] [--repeat 3] [--steps 100]
"""

import argparse
import inspect
import platform
import re
import time

import numpy as np
from threadpoolctl import threadpool_info

import tensorgrad as tg
import tensorgrad.functions as F
from nn.graph import unrolled_graph
from tensorgrad import viz

NODES_PER_STEP = 11  # as drawn before shared uses were folded (now + 3 markers)


def unrolled_rnn(nodes, hidden=8, batch=2, seed=0):
    """The loss of an Elman RNN unrolled over enough steps to draw about ``nodes`` nodes."""
    rng = np.random.default_rng(seed)
    Wx = tg.Variable(rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.3, name="Wx")
    Wh = tg.Variable(rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.3, name="Wh")
    b = tg.Variable(np.zeros(hidden, np.float32), name="b")
    h = tg.Variable(np.zeros((batch, hidden), np.float32), name="h0")
    for t in range(max(1, nodes // NODES_PER_STEP)):
        x = tg.Variable(rng.standard_normal((batch, hidden)).astype(np.float32), requires_grad=False)
        with tg.scope(f"t={t}"):
            h = F.tanh(x @ Wx + h @ Wh + b)
    return h.sum()


def count_nodes(source):
    """The nodes declared in DOT source (a cluster's own attributes are a ``graph [label=`` line)."""
    return len(re.findall(r"^\t+(?!graph )\w+ \[label=", source, re.M))


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def picture(digraph):
    """(width, height) of the laid-out drawing in inches, and its PNG (width, height) in pixels."""
    plain = digraph.pipe(format="plain").decode().split("\n", 1)[0].split()
    png = digraph.pipe(format="png")
    return (float(plain[2]), float(plain[3])), (int.from_bytes(png[16:20]), int.from_bytes(png[20:24]))


def drawings(steps, repeat):
    """The table of the drawings of a ``steps``-step LSTM: nodes, make_dot and dot times, size."""
    ways = {"in full": {}, "collapsed": {"collapse": True}}
    if "steps" in inspect.signature(viz.make_dot).parameters:
        ways["4 steps in full, the rest folded"] = {"window": slice(steps // 2 - 2, steps // 2 + 2)}
    print(f"\n{steps}-step LSTM (tensorgrad graph --steps {steps}), dot -Tpng:")
    print("| drawing | nodes | edges | make_dot | dot -Tpng | layout (inches) | PNG (pixels) |")
    print("|:--------|------:|------:|---------:|----------:|----------------:|-------------:|")
    for way, options in ways.items():
        draw = best_time(lambda options=options: unrolled_graph("lstm", steps, **options), repeat)
        digraph = unrolled_graph("lstm", steps, **options)
        source = digraph.source
        nodes = count_nodes(source)
        render = best_time(lambda digraph=digraph: digraph.pipe(format="png"), repeat)
        (width, height), (px, py) = picture(digraph)
        print(f"| {way} | {nodes:,} | {source.count(' -> '):,} | {draw:.2f} s | {render:.1f} s "
              f"| {width:.0f} × {height:.0f} | {px:,} × {py:,} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    print(f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}")
    print("BLAS:", ", ".join(f"{i['internal_api']} {i.get('architecture', '')}" for i in threadpool_info()))
    print("| nodes | edges | clusters | make_dot(...).source | with gradient norms | collapse=True |")
    print("|------:|------:|---------:|---------------------:|--------------------:|--------------:|")
    for size in args.sizes:
        loss = unrolled_rnn(size)
        source = viz.make_dot(loss).source
        nodes = count_nodes(source)
        edges = source.count(" -> ")
        clusters = source.count("subgraph cluster_")
        plain = best_time(lambda loss=loss: viz.make_dot(loss).source, args.repeat)
        loss.backward(retain_grad=True)
        graded = best_time(lambda loss=loss: viz.make_dot(loss).source, args.repeat)
        collapsed = best_time(lambda loss=loss: viz.make_dot(loss, collapse=True).source, args.repeat)
        print(f"| {nodes:,} | {edges:,} | {clusters:,} | {plain:.3f} s | {graded:.3f} s "
              f"| {collapsed:.3f} s |")
    drawings(args.steps, args.repeat)


if __name__ == "__main__":
    main()
