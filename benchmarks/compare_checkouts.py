"""The training step of ``train_step.py`` in two checkouts of the project, interleaved.

    python benchmarks/compare_checkouts.py OTHER_CHECKOUT [--engine eager|jit] [--threads 1]
                                           [--repeats 15] [--modes rnn lstm gru] [--quick]
                                           [--keep-freed-memory]

``--engine``: train_step.py's ``tensorgrad`` engine (eager, the default) or its ``jit`` engine.

Two versions of ``tensorgrad`` cannot be imported into one process, so each checkout runs in a
child process of its own (its ``tensorgrad``, ``nn`` and ``benchmarks/train_step.py``), started
once per row and kept waiting on a pipe (``step_children.py``); the children take a burst of
training steps in turn (the same number each), the order alternating every round, so that a
drift in the machine's speed reaches both alike. The table gives each checkout's median
milliseconds per step and the median of the per-round ratios (this checkout / the other), and
the largest difference between the two checkouts' losses at the same step (the last of each
burst; both start from the same weights and see the same data), and each one's median minor
page faults per step (memory taken fresh from the system).
"""

import argparse
import os
from statistics import median

from step_children import rounds, start

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other")
    parser.add_argument("--engine", choices=["eager", "jit"], default="eager")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--modes", nargs="+", default=["rnn", "lstm", "gru"])
    parser.add_argument("--quick", action="store_true", help="only (H, B, T) = (128, 32, 64)")
    parser.add_argument("--keep-freed-memory", action="store_true", help="malloc keeps freed memory")
    args = parser.parse_args()
    sizes = [(128, 32, 64)] if args.quick else [(64, 32, 100), (128, 32, 64), (256, 32, 64), (512, 64, 64)]
    checkouts = [HERE, os.path.abspath(args.other)]
    print(f"this: {checkouts[0]}\nother: {checkouts[1]}\nengine: {args.engine}\n")
    print("| threads | model | H, B, T | this ms | other ms | this / other | max loss gap "
          "| page faults this / other |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        for mode in args.modes:
            for hidden, batch_size, steps in sizes:
                engine = "TensorgradJitLM" if args.engine == "jit" else "TensorgradLM"
                spec = [engine, mode, hidden, batch_size, steps, threads]
                answers, blas = rounds({c: start(c, spec, args.keep_freed_memory) for c in checkouts},
                                       args.repeats)
                this, other = (answers[c] for c in checkouts)
                ratio = median(a / b for a, b in zip(this["seconds"], other["seconds"], strict=True))
                gap = max(abs(a - b) for a, b in zip(this["loss"], other["loss"], strict=True))
                print(f"| {threads} | {mode} | {hidden}, {batch_size}, {steps} "
                      f"| {median(this['seconds']) * 1e3:.1f} | {median(other['seconds']) * 1e3:.1f} "
                      f"| {ratio:.2f} | {gap:.1e} "
                      f"| {median(this['faults']):,.0f} / {median(other['faults']):,.0f} |", flush=True)
    print(f"\nBLAS: {blas[checkouts[0]]}")


if __name__ == "__main__":
    main()
