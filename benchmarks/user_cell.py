"""A user's own LSTM cell through nn.Recurrent against the fused nn.LSTM layer, as a ratio.

    python benchmarks/user_cell.py [--hidden 128] [--batch 32] [--steps 64] [--repeats 15]

Both compute the same LSTM (PyTorch's equations, the same weights): the user cell is ten
lines of Variable operations (nn.Linear on [x, h], split, σ, tanh), run step by step by
``nn.Recurrent``; ``nn.LSTM`` projects the input of the whole sequence in one matmul and
takes each step as one fused cell Function with a hand-written backward. Each round times
one forward and backward pass over a window of each, interleaved in one process (the
machine's load hits both alike); the medians and their ratio are reported, with the BLAS
library that ran (threadpoolctl).
"""

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import nn
import tensorgrad as tg
import tensorgrad.functions as F


class HandLSTM(nn.Module):
    """[i, f, g, o] = [x, h] Wᵀ + b;  c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g);  h' = σ(o) ⊙ tanh(c')."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.gates = nn.Linear(input_size + hidden_size, 4 * hidden_size)

    def forward(self, x, state):
        zeros = np.zeros((x.shape[0], self.hidden_size), x.dtype)
        h, c = (zeros, zeros) if state is None else state
        i, f, g, o = F.split(self.gates(F.concat([x, h], axis=1)), 4, axis=1)
        c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
        return F.sigmoid(o) * F.tanh(c), c


def same_weights(cell, lstm):
    """Give the hand cell the fused layer's weights: W = [W_ih, W_hh], b = b_ih + b_hh."""
    cell.gates.weight.data = np.concatenate([lstm.weight_ih_l0.data, lstm.weight_hh_l0.data], axis=1)
    cell.gates.bias.data = lstm.bias_ih_l0.data + lstm.bias_hh_l0.data


def window(model, x):
    out, _ = model(x)
    loss = (out * out).sum()
    model.zero_grad()
    loss.backward()
    return loss.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    tg.manual_seed(0)
    lstm = nn.LSTM(args.hidden, args.hidden)
    cell = HandLSTM(args.hidden, args.hidden)
    same_weights(cell, lstm)
    user = nn.Recurrent(cell)
    x = np.random.default_rng(0).standard_normal((args.steps, args.batch, args.hidden)).astype(np.float32)
    with threadpool_limits(1, user_api="blas"):
        a, b = window(user, x), window(lstm, x)
        assert abs(a - b) <= 1e-4 * abs(b), (a, b)  # the same LSTM
        times = {"nn.Recurrent(HandLSTM)": [], "nn.LSTM (fused)": []}
        for _ in range(args.repeats):
            for name, model in (("nn.Recurrent(HandLSTM)", user), ("nn.LSTM (fused)", lstm)):
                start = time.perf_counter()
                window(model, x)
                times[name].append(time.perf_counter() - start)
        blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()
                if i["user_api"] == "blas"]
    print(f"BLAS: {blas}")
    print(f"one window: {args.steps} steps x batch {args.batch}, hidden {args.hidden}, float32, "
          "forward + backward")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"  {name:24s} {median * 1000:8.1f} ms (median of {args.repeats})")
    ratio = medians["nn.Recurrent(HandLSTM)"] / medians["nn.LSTM (fused)"]
    print(f"user cell / fused layer: {ratio:.2f}x")


if __name__ == "__main__":
    main()
