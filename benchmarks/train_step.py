"""One training step of a character-level language model: tensorgrad, PyTorch and hand-written NumPy.

    python benchmarks/train_step.py [--quick] [--threads 1 2] [--repeats 15] [--modes rnn lstm gru]
                                    [--keep-freed-memory]

The step: embedding (V = 65, E = H) → one recurrent layer over T steps → linear to V at
every step → softmax cross-entropy averaged over T·B → backward → clipping to global norm 5
→ Adam, float32, for (H, B, T) = (64, 32, 100), (128, 32, 64), (256, 32, 64), (512, 64, 64).
The engines start from the same weights and see the same data:

- tensorgrad: ``nn.CharRNN``, ``nn.softmax_cross_entropy``, ``loss.backward()``,
  ``nn.clip_grad_norm``, ``nn.optim.Adam``, run eagerly (``tensorgrad train --no-jit``);
- tensorgrad jit: the same, with the forward and the loss a replayed plan (``tg.jit``,
  its weight gradients over all steps in one matmul: ``sum_weight_gradients=True``), and
  for inference the model's forward one;
- PyTorch (when installed): ``torch.nn.Embedding``, ``RNN``/``LSTM``/``GRU``, ``Linear``,
  ``cross_entropy``, ``clip_grad_norm_``, ``torch.optim.Adam``;
- ``numpy_bptt.py``: the forward pass and BPTT written by hand in NumPy.

The machine may be shared and its speed may drift, so the engines run in alternation (the order
rotating every round) and the table gives medians and, for the ratios, the median of the per-
round ratios. Each engine runs in a child process of its own (``step_children.py``), kept for
the whole row and asked over a pipe for a burst of steps back to back (one untimed, then as
many as take the slowest engine about 0.1 s, the same number for all; their mean is the time),
and the next engine is asked only once the last one's process is idle. Without that wait, in
one process or in several, the threads of one engine (OpenBLAS's idle workers spin for about
0.1 s after a step) ran beside the next engine's step: in one process, with 2 threads on 2
CPUs, PyTorch's steps came out 2–5× slower than with 1. Each child builds its engine from the
same weights and batch, sets its threads (threadpoolctl for NumPy's BLAS,
``torch.set_num_threads`` for PyTorch) and takes two warm-up steps; its own malloc heap makes
its page faults its own. Each engine's page faults per step are counted beside its time: memory
that glibc's malloc gave back to the system and takes again costs a fault per 4 KB page, which
on a virtual machine can be a tenth of a training step. ``--keep-freed-memory`` runs with
malloc keeping freed memory, so that the engines are compared on their work alone. Peak memory
is measured in child processes too, over the first three steps of a new model (so the
optimizer's state and whatever an engine keeps from step to step are included): the growth of
the resident set (all engines; glibc is told to give large blocks back to the system at once,
so that the peak shows) and, for the NumPy engines, the peak of NumPy's allocations under
tracemalloc.

Then inference: a no_grad forward over a sequence (tokens/s), sampling one character at a
time (characters/s), and a check that memory under no_grad does not grow with the length.
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np
from numpy_bptt import CharLM
from overhead import machine
from step_children import KEEP_FREED, minor_faults, rounds, start
from threadpoolctl import threadpool_info, threadpool_limits

import tensorgrad as tg
from nn.charlm import CharRNN
from nn.clip import clip_grad_norm
from nn.losses import softmax_cross_entropy
from nn.optim import Adam

try:
    import torch
except ImportError:  # the comparison is optional
    torch = None

VOCAB = 65
MAX_NORM = 5.0
LR = 2e-3
MODES = ("rnn", "lstm", "gru")
SIZES = ((64, 32, 100), (128, 32, 64), (256, 32, 64), (512, 64, 64))  # (H, B, T)
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout


# ----------------------------------------------------------------------------- the engines
class TensorgradLM:
    name = "tensorgrad"

    def __init__(self, params, mode):
        hidden = params["rnn.weight_hh_l0"].shape[1]
        self.model = CharRNN(VOCAB, hidden, 1, mode)
        self.model.load_state_dict(params)
        self.optimizer = Adam(self.model.parameters(), lr=LR)
        self.model_forward = self.model  # inference; the jit engine replays a plan of it

    def step(self, ids, targets):
        logits, _ = self.model(ids)
        loss = softmax_cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        self.model.zero_grad()
        loss.backward()
        clip_grad_norm(self.model.parameters(), MAX_NORM)
        self.optimizer.step()
        return loss.item()

    def forward(self, ids, state=None):
        with tg.no_grad():
            logits, state = self.model_forward(ids, state)
        return logits.data, state


class TensorgradJitLM(TensorgradLM):
    name = "jit"

    def __init__(self, params, mode):
        super().__init__(params, mode)
        self.window_loss = tg.jit(self._window_loss, sum_weight_gradients=True)
        self.model_forward = tg.jit(self.model.forward)

    def _window_loss(self, ids, targets):
        logits, _ = self.model(ids)
        return softmax_cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))

    def step(self, ids, targets):
        loss = self.window_loss(ids, targets)
        self.model.zero_grad()
        loss.backward()
        clip_grad_norm(self.model.parameters(), MAX_NORM)
        self.optimizer.step()
        return loss.item()


class NumpyLM:
    name = "numpy"

    def __init__(self, params, mode):
        self.model = CharLM(params, mode, lr=LR)

    def step(self, ids, targets):
        return self.model.step(ids, targets, MAX_NORM)

    def forward(self, ids, state=None):
        return self.model.forward(ids, state)


if torch is not None:
    class TorchCharRNN(torch.nn.Module):
        """The model of nn.CharRNN, with the same parameter names."""

        def __init__(self, hidden, mode):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, hidden)
            self.rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[mode](hidden, hidden)
            self.head = torch.nn.Linear(hidden, VOCAB)

        def forward(self, ids, state=None):
            output, state = self.rnn(self.embedding(ids), state)
            return self.head(output), state


class TorchLM:
    name = "pytorch"

    def __init__(self, params, mode):
        self.model = TorchCharRNN(params["rnn.weight_hh_l0"].shape[1], mode)
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)

    def step(self, ids, targets):
        logits, _ = self.model(torch.from_numpy(ids))
        targets = torch.from_numpy(targets).reshape(-1)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), MAX_NORM)
        self.optimizer.step()
        return loss.item()

    def forward(self, ids, state=None):
        with torch.no_grad():
            logits, state = self.model(torch.from_numpy(ids), state)
        return logits.numpy(), state


ENGINES = [TensorgradLM, TensorgradJitLM, TorchLM, NumpyLM] if torch is not None else [
    TensorgradLM, TensorgradJitLM, NumpyLM]


def initial_weights(mode, hidden):
    """A float32 state dict of a fresh nn.CharRNN (the same for every engine)."""
    tg.manual_seed(0)
    return CharRNN(VOCAB, hidden, 1, mode).state_dict()


def batch(steps, batch_size, seed=0):
    """Input ids and next-character targets, both (T, B) int64."""
    ids = np.random.default_rng(seed).integers(0, VOCAB, (steps + 1, batch_size))
    return ids[:-1], ids[1:]


def set_threads(threads):
    """Use ``threads`` BLAS threads in NumPy and threads in PyTorch from now on."""
    threadpool_limits(limits=threads, user_api="blas")
    if torch is not None:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- measuring
def interleaved(tasks, repeats):
    """Seconds of each of ``tasks`` (name → callable) per run, the order rotating every round, and
    each task's page faults per run (minor faults: memory freshly taken from the system)."""
    names = list(tasks)
    times = {name: [] for name in names}
    faults = dict.fromkeys(names, 0)
    for task in tasks.values():  # warm-up: first-call costs, caches, optimizer state
        task()
        task()
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            before = minor_faults()
            begin = time.perf_counter()
            tasks[name]()
            times[name].append(time.perf_counter() - begin)
            faults[name] += minor_faults() - before
    return times, {name: n / repeats for name, n in faults.items()}


def summary(times, reference="tensorgrad"):
    """Median seconds per engine, and the median per-round ratio of ``reference`` to each."""
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    ratios = {name: statistics.median(a / b for a, b in zip(times[reference], ts))
              for name, ts in times.items() if name != reference}
    return medians, ratios


def peak_memory(engine, mode, size):
    """Peak memory of the first training steps, in child processes: {"rss": bytes, "traced": bytes}."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    peaks = {}
    for what in ("rss", "traced"):
        command = [sys.executable, __file__, "--memory-child", json.dumps([engine, mode, list(size), what])]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        peaks[what] = json.loads(result.stdout.splitlines()[-1])
    return peaks


def _status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def memory_child(spec):
    """In the child: the peak growth of the resident set, or of the NumPy allocations traced, over
    three training steps of a new model (the arrays an engine keeps from step to step included)."""
    name, mode, (hidden, batch_size, steps), what = json.loads(spec)
    set_threads(1)
    engine = next(e for e in ENGINES if e.name == name)(initial_weights(mode, hidden), mode)
    ids, targets = batch(steps, batch_size)
    if name == "jit":  # a replay's memory: after the trace (an eager step, whose peak is eager's and more)
        engine.step(ids, targets)
    gc.collect()
    peak = None
    if what == "rss":
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak resident set (VmHWM) to the current one
            before = _status("VmRSS")
            for _ in range(3):
                engine.step(ids, targets)
            peak = _status("VmHWM") - before
        except OSError:  # not Linux, or not allowed
            pass
    elif name != "pytorch":  # PyTorch's allocations bypass tracemalloc
        tracemalloc.start()
        for _ in range(3):
            engine.step(ids, targets)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(json.dumps(peak))


def sample(engine, length, rng):
    """``length`` characters drawn one at a time, each fed back in (batch of 1)."""
    state, char = None, 0
    for _ in range(length):
        logits, state = engine.forward(np.array([[char]]), state)
        p = np.exp(logits[-1, 0] - logits[-1, 0].max())
        char = min(int(np.searchsorted(np.cumsum(p), rng.random() * p.sum())), VOCAB - 1)
    return char


def traced_peak(run):
    gc.collect()
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


# ----------------------------------------------------------------------------- the report
def mb(n):
    return "–" if n is None else f"{n / 2**20:.1f}"


def table(header, rows=()):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


def training(modes, sizes, threads, repeats, keep_freed_memory):
    print(f"\n### Training step, {threads} thread{'s' if threads > 1 else ''} "
          f"(median of {repeats} interleaved runs; ratios: median of the per-round ratios)\n")
    names = [e.name for e in ENGINES]
    table(["model", "H, B, T"] + [f"{n} ms" for n in names] + [f"tensorgrad / {n}" for n in names[1:]]
          + [f"jit / {n}" for n in names if n not in ("tensorgrad", "jit")]
          + ["tokens/s " + n for n in names] + ["page faults " + n for n in names])
    for mode in modes:
        for hidden, batch_size, steps in sizes:
            spec = [mode, hidden, batch_size, steps, threads]
            answers, _ = rounds({e.name: start(HERE, [e.__name__, *spec], keep_freed_memory)
                                 for e in ENGINES}, repeats)
            times = {n: answers[n]["seconds"] for n in names}
            faults = {n: sum(answers[n]["faults"]) / repeats for n in names}
            medians, ratios = summary(times)
            _, jit_ratios = summary(times, reference="jit")
            table_row = [mode, f"{hidden}, {batch_size}, {steps}"]
            table_row += [f"{medians[n] * 1e3:.1f}" for n in names] + [f"{ratios[n]:.2f}" for n in names[1:]]
            table_row += [f"{jit_ratios[n]:.2f}" for n in names if n not in ("tensorgrad", "jit")]
            table_row += [f"{steps * batch_size / medians[n]:,.0f}" for n in names]
            table_row += [f"{faults[n]:,.0f}" for n in names]
            print("| " + " | ".join(table_row) + " |", flush=True)


def memory(modes, sizes):
    print("\n### Peak memory over the first three training steps of a new model, "
          "beyond its parameters (MB; jit: three replays after its traced first step)\n")
    names = [e.name for e in ENGINES]
    traced = [n for n in names if n != "pytorch"]
    table(["model", "H, B, T"] + [f"NumPy allocations, {n}" for n in traced] + ["tensorgrad / numpy",
                                                                                "jit / tensorgrad"]
          + [f"resident set growth, {n}" for n in names])
    for mode in modes:
        for size in sizes:
            peaks = {n: peak_memory(n, mode, size) for n in names}
            row = [mode, ", ".join(map(str, size))] + [mb(peaks[n]["traced"]) for n in traced]
            row += [f"{peaks['tensorgrad']['traced'] / peaks['numpy']['traced']:.2f}",
                    f"{peaks['jit']['traced'] / peaks['tensorgrad']['traced']:.2f}"]
            row += [mb(peaks[n]["rss"]) for n in names]
            print("| " + " | ".join(row) + " |", flush=True)


def inference(modes, sizes, threads, repeats, sample_length):
    print(f"\n### Inference, {threads} thread{'s' if threads > 1 else ''}: no_grad forward over (T, B) "
          f"tokens, and sampling {sample_length} characters one at a time (B = 1)\n")
    names = [e.name for e in ENGINES]
    table(["model", "H, B, T"] + [f"forward tokens/s {n}" for n in names]
          + [f"sampling chars/s {n}" for n in names] + [f"sampling tensorgrad / {n}" for n in names[1:]])
    for mode in modes:
        for hidden, batch_size, steps in sizes:
            params = initial_weights(mode, hidden)
            ids, _ = batch(steps, batch_size)
            engines = [e(params, mode) for e in ENGINES]
            forward, _ = summary(interleaved({e.name: lambda e=e, ids=ids: e.forward(ids) for e in engines},
                                             repeats)[0])
            rng = np.random.default_rng(0)
            times, _ = interleaved({e.name: lambda e=e, rng=rng: sample(e, sample_length, rng)
                                    for e in engines}, repeats)
            sampling, ratios = summary(times)
            row = [mode, f"{hidden}, {batch_size}, {steps}"]
            row += [f"{steps * batch_size / forward[n]:,.0f}" for n in names]
            row += [f"{sample_length / sampling[n]:,.0f}" for n in names]
            row += [f"{ratios[n]:.2f}" for n in names[1:]]
            print("| " + " | ".join(row) + " |", flush=True)


def flat_memory(hidden=256, batch_size=32):
    """Peak memory under no_grad against the sequence length, tensorgrad beside hand-written NumPy."""
    print(f"\n### Memory under no_grad (LSTM, H = {hidden}; peaks of NumPy's allocations)\n")
    params = initial_weights("lstm", hidden)
    engines = [TensorgradLM(params, "lstm"), NumpyLM(params, "lstm")]
    table([f"forward over T steps, B = {batch_size}", "tensorgrad MB", "numpy MB", "ratio",
           "tensorgrad with gradients recorded, MB"])
    for steps in (64, 256, 1024):
        ids, _ = batch(steps, batch_size)
        peaks = [traced_peak(lambda e=e, ids=ids: e.forward(ids)) for e in engines]
        recorded = traced_peak(lambda ids=ids: engines[0].model(ids))
        ratio = peaks[0] / peaks[1]
        print(f"| T = {steps} | {mb(peaks[0])} | {mb(peaks[1])} | {ratio:.2f} | {mb(recorded)} |")
    print()
    table(["sampling n characters (B = 1)", "tensorgrad KB", "numpy KB"])
    for length in (100, 1000, 4000):
        peaks = [traced_peak(lambda e=e, n=length: sample(e, n, np.random.default_rng(0))) for e in engines]
        print(f"| n = {length} | {peaks[0] / 1024:.0f} | {peaks[1] / 1024:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smallest size only, 5 repeats, no memory")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="BLAS/PyTorch threads")
    parser.add_argument("--repeats", type=int, default=15, help="runs of each engine per row")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--no-inference", action="store_true", help="skip the inference tables")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="run with glibc's malloc keeping freed memory for reuse (no page faults)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child)
    if args.keep_freed_memory and any(os.environ.get(k) != v for k, v in KEEP_FREED.items()):
        # malloc reads these once, at start-up: run this script again with them set
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **KEEP_FREED))
    sizes = SIZES[:1] if args.quick else SIZES
    repeats = 5 if args.quick else args.repeats
    print(f"machine: {machine()}, {time.strftime('%Y-%m-%d')}")
    print("BLAS: " + "; ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture')} kernels)"
                               for i in threadpool_info() if i["user_api"] == "blas"))
    if args.keep_freed_memory:
        print("glibc malloc keeps freed memory: " + ", ".join(f"{k}={v}" for k, v in KEEP_FREED.items()))
    if torch is not None:
        print(f"PyTorch {torch.__version__}")
    for threads in args.threads:
        set_threads(threads)
        training(args.modes, sizes, threads, repeats, args.keep_freed_memory)
        if not args.no_inference:
            inference(args.modes, sizes, threads, repeats, sample_length=50 if args.quick else 200)
    if not (args.quick or args.no_memory):
        memory(args.modes, sizes)
        set_threads(1)
        flat_memory()


if __name__ == "__main__":
    main()
