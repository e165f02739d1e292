"""A Transformer encoder layer, forward and backward: tensorgrad, PyTorch and hand-written NumPy;
then the forward time of the LSTM and the Transformer character models over T positions.

    python benchmarks/attention.py [--repeats 15] [--threads 1]

Part 1: ``nn.TransformerEncoderLayer(128, 4)`` (dim_feedforward 512, post-norm, ReLU,
dropout 0) on x (T, B, E) = (64, 32, 128) float32 under the causal mask, forward then
backward from a fixed ∂L/∂y, from one state dict, by

- tensorgrad: the layer in training mode, ``y.backward(g)``;
- PyTorch (when installed): ``torch.nn.TransformerEncoderLayer`` in training mode (so not
  the inference fast path), ``y.backward(g)``;
- ``numpy_transformer.py``: the layer and its backward written by hand in NumPy
  (``tests/test_benchmark_attention_reference.py`` checks it against tensorgrad to 1e-10).

The engines run in alternation, the order rotating every round; the table gives each one's
median time and, as the ratio, the median of the per-round ratios to tensorgrad.

Part 2: the forward (no gradient) of notebook 10's two character models, an LSTM of hidden
size 96 and a 2-layer Transformer of width 56 (about 92,000 parameters each), over T
positions of a batch of 8, interleaved, best of ``--repeats``.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
from numpy_transformer import EncoderLayer
from overhead import machine
from threadpoolctl import threadpool_info, threadpool_limits

import nn
import tensorgrad as tg

try:
    import torch
except ImportError:  # the comparison is optional
    torch = None

T, B, E, HEADS, FF = 64, 32, 128, 4, 512


def engines():
    tg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0)
    state = layer.state_dict()
    rng = np.random.default_rng(0)
    x, g = (rng.standard_normal((T, B, E)).astype(np.float32) for _ in range(2))
    mask = nn.generate_square_subsequent_mask(T)

    def tensorgrad_step():
        x_var = tg.Variable(x)
        layer.zero_grad()
        layer(x_var, src_mask=mask, is_causal=True).backward(tg.Variable(g))

    reference = EncoderLayer(state, HEADS)

    def numpy_step():
        reference.forward(x)
        reference.backward(g)

    steps = {"tensorgrad": tensorgrad_step, "numpy": numpy_step}
    if torch is not None:
        theirs = torch.nn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0).train()
        theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
        tx, tg_, tmask = torch.tensor(x), torch.tensor(g), torch.tensor(mask)

        def torch_step():
            x_t = tx.clone().requires_grad_()
            theirs.zero_grad()
            theirs(x_t, src_mask=tmask, is_causal=True).backward(tg_)

        steps["pytorch"] = torch_step
    return steps


def layer_table(repeats):
    steps = engines()
    names = list(steps)
    for step in steps.values():  # warm-up
        step()
        step()
    times = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    print(f"\nTransformerEncoderLayer({E}, {HEADS}, dim_feedforward={FF}) forward + backward, "
          f"(T, B) = ({T}, {B}), causal, float32, {repeats} rounds")
    print("| engine | median ms | engine / tensorgrad |")
    print("|---|---:|---:|")
    for name in names:
        ratio = statistics.median(a / b for a, b in zip(times[name], times["tensorgrad"]))
        print(f"| {name} | {statistics.median(times[name]) * 1e3:.1f} | {ratio:.2f} |")


def forward_table(repeats):
    vocab = 96
    tg.manual_seed(0)
    lengths = [8, 16, 32, 64, 128, 256, 512]
    lstm = nn.CharRNN(vocab, 96, 1, "lstm")
    transformer = nn.CharTransformer(vocab, 56, 2, 4, context=max(lengths))
    print(f"\nforward over T positions, batch 8, no gradient (best of {repeats}): LSTM hidden 96 "
          f"({sum(p.size for p in lstm.parameters()):,} parameters) against a 2-layer Transformer "
          f"of width 56 ({sum(p.size for p in transformer.parameters()):,} parameters, positions for 512)")
    print("| T | LSTM ms | Transformer ms | Transformer / LSTM |")
    print("|---:|---:|---:|---:|")
    with tg.no_grad():
        for T_ in lengths:
            ids = np.random.default_rng(T_).integers(0, vocab, (T_, 8))
            best = {"lstm": np.inf, "transformer": np.inf}
            for _ in range(repeats):
                for name, model in (("lstm", lstm), ("transformer", transformer)):
                    start = time.perf_counter()
                    model(ids)
                    best[name] = min(best[name], time.perf_counter() - start)
            print(f"| {T_} | {best['lstm'] * 1e3:.2f} | {best['transformer'] * 1e3:.2f} | "
                  f"{best['transformer'] / best['lstm']:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("OPENBLAS_CORETYPE:", os.environ.get("OPENBLAS_CORETYPE", "unset"),
          " OPENBLAS_L2_SIZE:", os.environ.get("OPENBLAS_L2_SIZE", "unset"))
    if torch is not None:
        torch.set_num_threads(args.threads)
        print(f"PyTorch {torch.__version__}, {args.threads} thread(s)")
    with threadpool_limits(args.threads, user_api="blas"):
        for pool in threadpool_info():
            print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} "
                  f"kernel {pool.get('architecture')}, {pool.get('num_threads')} thread(s)")
        layer_table(args.repeats)
        forward_table(max(3, args.repeats // 5))


if __name__ == "__main__":
    sys.exit(main())
