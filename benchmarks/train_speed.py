"""Characters per second of `tensorgrad train` with its default model: jit, eager and PyTorch.

    python benchmarks/train_speed.py [--steps 20] [--rounds 5] [--threads 1]

Runs the training step of the command line (built-in corpus, default configuration) with
each window traced and replayed (``tg.jit``, the default), the same with the recurrent
weight's gradient over all steps in one matmul (``sum_weight_gradients=True``: not bit for
bit eager's), eagerly (``--no-jit``), and the same model in PyTorch (when installed) on the
same windows from the same weights. The
engines take turns, ``--steps`` steps at a time, for ``--rounds`` rounds (the machine may
be shared: each engine's figure is its median round). Reported: characters per second, the
number the progress bar shows; the matmul FLOPs of one step (forward and backward), and how
far each engine is from this machine's measured matmul peak, for large square matrices and
for the thin products of one time step. Then what tensorgrad's step is made of: its matmuls
timed alone (the same products, shapes and count), its Python (the same step on a model of
hidden size 4 and batch 1, whose arrays are too small for NumPy's arithmetic to count),
and the rest, the elementwise passes.
"""

import argparse
import statistics
import tempfile
import time

import numpy as np
from overhead import machine
from threadpoolctl import threadpool_info, threadpool_limits

import tensorgrad as tg
from nn.trainer import TrainConfig, Trainer

try:
    import torch
except ImportError:  # the comparison is optional
    torch = None


def matmul_flops(config, vocab):
    """Multiply-add FLOPs (2 per multiply-add) of one training step's matmuls: the input
    projection, the hidden side at every step and the head, forward (1×) and backward (2×:
    the gradients of both operands)."""
    T, B, H, L = config.seq_len, config.batch, config.hidden, config.layers
    gates = 4 if config.model == "lstm" else 3 if config.model == "gru" else 1
    forward = L * (2 * T * B * H * gates * H * 2) + 2 * T * B * H * vocab
    return 3 * forward


def step_matmuls(config, vocab):
    """The (m, k, n) of every matmul of one training step of a one-layer model, forward and backward."""
    T, B, H = config.seq_len, config.batch, config.hidden
    G = {"lstm": 4, "gru": 3}.get(config.model, 1) * H
    forward = [(T * B, H, G)] + [(B, H, G)] * T + [(T * B, H, vocab)]
    backward = [(T * B, vocab, H), (vocab, T * B, H)] + [(B, G, H), (G, B, H)] * T
    backward += [(T * B, G, H), (G, T * B, H)]
    return forward + backward


def matmul_seconds(shapes, repeats=5):
    """Seconds for the matmuls of ``shapes``, one after the other (best of ``repeats``)."""
    rng = np.random.default_rng(0)
    operands = [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32))
                for m, k, n in shapes]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for a, b in operands:
            a @ b
        best = min(best, time.perf_counter() - start)
    return best


def peak_gflops(shape, seconds=0.5):
    """GFLOP/s of float32 a @ b for a of shape (m, k) and b of shape (k, n), best of a few runs."""
    m, k, n = shape
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    repeats = max(1, int(seconds / max(2 * m * k * n / 2e10, 1e-6) / 5))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * m * k * n / best / 1e9


class TorchEngine:
    """The default model in PyTorch, from the trainer's weights, on the trainer's windows."""

    def __init__(self, trainer):
        config = trainer.config
        V = len(trainer.vocab)
        self.embedding = torch.nn.Embedding(V, config.hidden)
        self.rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[config.model](
            config.hidden, config.hidden, config.layers)
        self.head = torch.nn.Linear(config.hidden, V)
        self.modules = torch.nn.ModuleDict({"embedding": self.embedding, "rnn": self.rnn, "head": self.head})
        self.modules.load_state_dict({k: torch.from_numpy(np.array(v))  # copies: writable
                                      for k, v in trainer.model.state_dict().items()})
        self.optimizer = torch.optim.Adam(self.modules.parameters(), lr=config.lr)
        self.batches, self.clip, self.V = trainer.train_batches, config.clip, V
        self.step_number, self.state = 0, None

    def train_step(self):
        window = self.step_number % len(self.batches)
        inputs, targets = self.batches[window]
        if window == 0:
            self.state = None
        output, state = self.rnn(self.embedding(torch.from_numpy(np.array(inputs))), self.state)
        loss = torch.nn.functional.cross_entropy(self.head(output).reshape(-1, self.V),
                                                 torch.from_numpy(np.array(targets)).reshape(-1))
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.modules.parameters(), self.clip)
        self.optimizer.step()
        self.state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        self.step_number += 1
        return loss.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="steps per engine per round")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out, threadpool_limits(args.threads, user_api="blas"):
        def trainer(**options):
            return Trainer(TrainConfig(out=out, **options), progress=False, log=lambda *_: None)

        engines = {"tensorgrad jit": trainer(), "tensorgrad jit, one-matmul Wₕₕ gradient": trainer(),
                   "tensorgrad eager": trainer(jit=False)}
        summed = engines["tensorgrad jit, one-matmul Wₕₕ gradient"]
        summed.window_loss = tg.jit(summed._window_loss, sum_weight_gradients=True)
        if torch is not None:
            torch.set_num_threads(args.threads)
            engines["pytorch"] = TorchEngine(engines["tensorgrad jit"])
        for engine in engines.values():  # warm-up (and the traces)
            for _ in range(3):
                engine.train_step()
        seconds = {name: [] for name in engines}
        for r in range(args.rounds):
            names = list(engines)
            for name in names[r % len(names):] + names[:r % len(names)]:
                start = time.perf_counter()
                for _ in range(args.steps):
                    engines[name].train_step()
                seconds[name].append((time.perf_counter() - start) / args.steps)
        peaks = {"square 1024": peak_gflops((1024, 1024, 1024))}
        config, trainer = engines["tensorgrad jit"].config, engines["tensorgrad jit"]
        peaks[f"one step ({config.batch}×{config.hidden} by {config.hidden}×{4 * config.hidden})"] = (
            peak_gflops((config.batch, config.hidden, 4 * config.hidden)))
    flops = matmul_flops(config, len(trainer.vocab))
    chars = config.batch * config.seq_len
    print(f"machine: {machine()}, {args.threads} BLAS thread(s); shared with other jobs, engines interleaved")
    print("BLAS: " + "; ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture')} kernels)"
                               for i in threadpool_info() if i["user_api"] == "blas"))
    print(f"default model: {config.layers}-layer {config.model.upper()}, hidden {config.hidden}, "
          f"batch {config.batch} × {config.seq_len} characters, vocabulary {len(trainer.vocab)}; "
          f"matmul FLOPs per step {flops / 1e9:.3f} G")
    print("measured matmul peak (float32): " + ", ".join(f"{k}: {v:.1f} GFLOP/s" for k, v in peaks.items()))
    print()
    print("| engine | ms per step | characters/s | matmul GFLOP/s | of square peak | of one-step peak |")
    print("|---|---|---|---|---|---|")
    square, thin = peaks.values()
    for name, times in seconds.items():
        step = statistics.median(times)
        rate = flops / step / 1e9
        print(f"| {name} | {step * 1e3:.1f} | {chars / step:,.0f} | {rate:.1f} | {rate / square:.0%} | "
              f"{rate / thin:.0%} |")
    breakdown(config, len(trainer.vocab), seconds, args.threads)


def breakdown(config, vocab, seconds, threads):
    """tensorgrad's step split into matmuls (timed alone), Python (a tiny model's step) and the rest."""
    with tempfile.TemporaryDirectory() as out, threadpool_limits(threads, user_api="blas"):
        matmuls = matmul_seconds(step_matmuls(config, vocab))
        tiny = {}
        for name, jit in (("tensorgrad jit", True), ("tensorgrad eager", False)):
            trainer = Trainer(TrainConfig(out=out, hidden=4, batch=1, jit=jit), progress=False,
                              log=lambda *_: None)
            for _ in range(3):
                trainer.train_step()
            times = []
            for _ in range(10):
                start = time.perf_counter()
                trainer.train_step()
                times.append(time.perf_counter() - start)
            tiny[name] = statistics.median(times)
    print(f"\nwhat the step is made of (ms): its {len(step_matmuls(config, vocab))} matmuls timed alone, "
          "Python (the step of a hidden-4, batch-1 model), and the rest (elementwise passes)\n")
    print("| engine | step | matmuls | Python | elementwise and the rest |")
    print("|---|---|---|---|---|")
    for name, python in tiny.items():
        step = statistics.median(seconds[name])
        print(f"| {name} | {step * 1e3:.1f} | {matmuls * 1e3:.1f} | {python * 1e3:.1f} | "
              f"{(step - matmuls - python) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
