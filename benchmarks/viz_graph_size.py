"""How long make_dot takes to produce the DOT source of large graphs.

The graph is a hand-unrolled Elman RNN, h_t = tanh(x_t Wx + h_{t-1} Wh + b), with one
``tg.scope`` per step: 11 drawn nodes per step (x_t, 5 Functions and their 5 outputs).
For each size it times ``make_dot(loss).source`` (best of ``--repeat`` runs) drawn three
ways: plain, with gradient norms after ``backward(retain_grad=True)``, and collapsed.

    python benchmarks/viz_graph_size.py [--sizes 1000 10000 100000] [--repeat 3]
"""

import argparse
import platform
import re
import time

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from tensorgrad import viz

NODES_PER_STEP = 11


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


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}")
    print("| nodes | edges | clusters | make_dot(...).source | with gradient norms | collapse=True |")
    print("|------:|------:|---------:|---------------------:|--------------------:|--------------:|")
    for size in args.sizes:
        loss = unrolled_rnn(size)
        source = viz.make_dot(loss).source
        nodes = len(re.findall(r"^\t+[vfs]\d+ \[", source, re.M))
        edges = source.count(" -> ")
        clusters = source.count("subgraph cluster_")
        plain = best_time(lambda loss=loss: viz.make_dot(loss).source, args.repeat)
        loss.backward(retain_grad=True)
        graded = best_time(lambda loss=loss: viz.make_dot(loss).source, args.repeat)
        collapsed = best_time(lambda loss=loss: viz.make_dot(loss, collapse=True).source, args.repeat)
        print(f"| {nodes:,} | {edges:,} | {clusters:,} | {plain:.3f} s | {graded:.3f} s "
              f"| {collapsed:.3f} s |")


if __name__ == "__main__":
    main()
