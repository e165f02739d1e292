"""Per-operation overhead of the autodiff engine, side by side with PyTorch when installed.

    python benchmarks/overhead.py [--ops 2000] [--repeats 30]

1. A chain of tiny ops (alternating mul, add, tanh on 4×4 float32, the other operand of mul
   and add a constant): forward and backward time per op, in µs, for tensorgrad eager, the
   same chain replayed by ``tg.jit`` (traced once before timing), PyTorch (one thread) and
   the chain written by hand in NumPy (its backward too: the floor of one NumPy call per
   array operation), measured in alternation so that all see the same machine load. The best of
   ``--repeats`` runs is reported (the least disturbed one), with the median beside it.
2. Backward time of graphs of 10⁴ and 10⁵ nodes, a chain and a fan-in (one leaf feeding N
   products that one stack collects), to show that backward grows linearly with the graph.
"""

import argparse
import os
import platform
import statistics
import time

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F

try:
    import torch
except ImportError:  # the comparison is optional
    torch = None


def chain(x, c, tanh, n_ops):
    """The sum of the chain of ``n_ops`` ops from ``x``: the same code for every engine (their
    Variables and tensors share the operators)."""
    y = x
    for i in range(n_ops):
        if i % 3 == 0:
            y = y * c
        elif i % 3 == 1:
            y = y + c
        else:
            y = tanh(y)
    return y.sum()


def timed_chain(x, c, tanh, n_ops, run=chain):
    """Seconds for the forward and the backward pass of the chain of ``n_ops`` ops from leaf ``x``."""
    start = time.perf_counter()
    loss = run(x, c, tanh, n_ops)
    middle = time.perf_counter()
    loss.backward()
    end = time.perf_counter()
    assert x.grad is not None
    return middle - start, end - middle


def chain_tensorgrad(n_ops, rng):
    x = tg.Variable(rng.random((4, 4), dtype=np.float32))
    return timed_chain(x, rng.random((4, 4), dtype=np.float32), F.tanh, n_ops)


_JITTED = tg.jit(chain)


def chain_jit(n_ops, rng):
    x = tg.Variable(rng.random((4, 4), dtype=np.float32))
    c = rng.random((4, 4), dtype=np.float32)
    _JITTED(x, c, F.tanh, n_ops)  # traced at the first call; later calls (and this one's timing) replay
    return timed_chain(x, c, F.tanh, n_ops, run=_JITTED)


def chain_torch(n_ops, rng):
    x = torch.tensor(rng.random((4, 4), dtype=np.float32), requires_grad=True)
    return timed_chain(x, torch.tensor(rng.random((4, 4), dtype=np.float32)), torch.tanh, n_ops)


def chain_numpy(n_ops, rng):
    """The chain on arrays (the same ``chain``, its tanh keeping its outputs) and its backward by
    hand: ∂(y c)/∂y = c, ∂(y + c)/∂y = 1, ∂tanh(y)/∂y = 1 - tanh²(y)."""
    x = rng.random((4, 4), dtype=np.float32)
    c = rng.random((4, 4), dtype=np.float32)
    tanh_outputs = []

    def tanh(y):
        tanh_outputs.append(np.tanh(y))
        return tanh_outputs[-1]

    start = time.perf_counter()
    chain(x, c, tanh, n_ops)  # the loss, y.sum(), as for the engines
    middle = time.perf_counter()
    grad = np.ones_like(x)
    one = np.ones((), x.dtype)  # the 1 of 1 - tanh², as an array once, as the engine's tanh backward takes it
    for i in reversed(range(n_ops)):
        if i % 3 == 0:
            grad = grad * c
        elif i % 3 == 2:
            t = tanh_outputs.pop()
            grad = grad * (one - t * t)
    end = time.perf_counter()
    return middle - start, end - middle


def chain_graph(n_nodes):
    """A chain of ``n_nodes`` Functions on a scalar, and its leaf."""
    x = tg.Variable(np.float64(1.0))
    y = x
    for i in range(n_nodes):
        y = y * 0.999 if i % 2 else y + 0.5
    return y, x


def fan_in_graph(n_nodes):
    """One leaf feeding ``n_nodes`` products, collected by one stack and summed."""
    x = tg.Variable(np.float64(1.0))
    return F.stack([x * float(i) for i in range(n_nodes)]).sum(), x


def backward_seconds(build, n_nodes):
    y, x = build(n_nodes)
    start = time.perf_counter()
    y.backward()
    seconds = time.perf_counter() - start
    assert x.grad is not None
    return seconds


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy {np.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000, help="length of the chain of tiny ops")
    parser.add_argument("--repeats", type=int, default=30, help="runs of each engine; the best is reported")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {machine()}")
    if torch is not None:
        torch.set_num_threads(1)
        print(f"PyTorch {torch.__version__}, 1 thread")

    engines = {"tensorgrad": chain_tensorgrad, "jit": chain_jit}
    if torch is not None:
        engines["pytorch"] = chain_torch
    engines["numpy"] = chain_numpy
    runs = {name: [] for name in engines}
    for run in engines.values():  # warm-up
        run(args.ops, rng)
    for _ in range(args.repeats):
        for name, run in engines.items():
            runs[name].append(run(args.ops, rng))

    print(f"\nchain of {args.ops} ops (mul, add, tanh on 4x4 float32), µs per op, "
          f"best of {args.repeats} (median)")
    print(f"{'engine':<12}{'forward':>16}{'backward':>16}{'total':>16}")
    totals = {}
    for name, times in runs.items():
        per_op = np.array(times) * 1e6 / args.ops  # rows: runs; columns: forward, backward
        total = per_op.sum(axis=1)
        totals[name] = total.min()
        columns = (per_op[:, 0], per_op[:, 1], total)
        cells = [f"{col.min():.2f} ({statistics.median(col):.2f})" for col in columns]
        print(f"{name:<12}" + "".join(f"{cell:>16}" for cell in cells))
    if torch is not None:
        print(f"ratio tensorgrad / pytorch (best total): {totals['tensorgrad'] / totals['pytorch']:.2f}, "
              f"jit / pytorch: {totals['jit'] / totals['pytorch']:.2f}")
    print(f"ratio jit / numpy (best total): {totals['jit'] / totals['numpy']:.2f}")

    print("\nbackward time of large graphs (best of 5)")
    print(f"{'graph':<10}{'nodes':>10}{'seconds':>12}{'µs per node':>14}")
    for label, build in [("chain", chain_graph), ("fan-in", fan_in_graph)]:
        per_size = {}
        for n in (10_000, 100_000):
            per_size[n] = min(backward_seconds(build, n) for _ in range(5))
            print(f"{label:<10}{n:>10}{per_size[n]:>12.3f}{per_size[n] / n * 1e6:>14.2f}")
        print(f"{label:<10}{'10x nodes':>10}{per_size[100_000] / per_size[10_000]:>11.1f}x time")


if __name__ == "__main__":
    main()
