"""The training step of ``train_step.py`` in two checkouts of the project, interleaved.

    python benchmarks/compare_checkouts.py OTHER_CHECKOUT [--engine eager|jit] [--threads 1]
                                           [--repeats 15] [--modes rnn lstm gru] [--quick]
                                           [--keep-freed-memory]

``--engine``: train_step.py's ``tensorgrad`` engine (eager, the default) or its ``jit`` engine.

Two versions of ``tensorgrad`` cannot be imported into one process, so each checkout runs
in a child process of its own (its ``tensorgrad``, ``nn`` and ``benchmarks/train_step.py``),
started once per row and kept waiting on a pipe; the children take one training step in
turn, the order alternating every round, so that a drift in the machine's speed reaches both
alike. The table gives each checkout's median milliseconds per step and the median of the
per-round ratios (this checkout / the other), and the largest difference between the two
checkouts' losses at the same step (both start from the same weights and see the same data),
and each one's median minor page faults per step (memory taken fresh from the system).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

# As train_step.py's --keep-freed-memory: glibc's malloc keeps freed memory instead of giving
# it back to the system, to take again as page faults.
KEEP_FREED = {"MALLOC_TRIM_THRESHOLD_": str(2**40), "MALLOC_MMAP_THRESHOLD_": str(2**30)}
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, resource, sys, time
from threadpoolctl import threadpool_info
import train_step as bench
mode, hidden, batch_size, steps, threads, jit = json.loads(sys.argv[1])
bench.set_threads(threads)
engine = (bench.TensorgradJitLM if jit else bench.TensorgradLM)(bench.initial_weights(mode, hidden), mode)
ids, targets = bench.batch(steps, batch_size)
for _ in range(2):  # warm-up: first-call costs, caches, the optimizer's state
    engine.step(ids, targets)
blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
        for i in threadpool_info() if i.get("user_api") == "blas"]
print(json.dumps(blas), flush=True)
for line in sys.stdin:
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    loss = engine.step(ids, targets)
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps([seconds, loss, faults]), flush=True)
"""


def child(checkout, spec, keep_freed_memory):
    path = os.pathsep.join([checkout, os.path.join(checkout, "benchmarks")])
    env = dict(os.environ, **(KEEP_FREED if keep_freed_memory else {}), PYTHONPATH=path)
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=checkout, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def row(checkouts, spec, repeats, keep_freed_memory):
    """{checkout: [seconds per step]}, the BLAS each child reports, {checkout: [loss per step]},
    {checkout: [page faults per step]}."""
    children = {c: child(c, spec, keep_freed_memory) for c in checkouts}
    blas = {c: json.loads(p.stdout.readline()) for c, p in children.items()}
    times = {c: [] for c in checkouts}
    losses = {c: [] for c in checkouts}
    faults = {c: [] for c in checkouts}
    for r in range(repeats):
        for c in checkouts[r % 2:] + checkouts[:r % 2]:
            children[c].stdin.write("step\n")
            children[c].stdin.flush()
            seconds, loss, step_faults = json.loads(children[c].stdout.readline())
            times[c].append(seconds)
            losses[c].append(loss)
            faults[c].append(step_faults)
    for p in children.values():
        p.stdin.close()
        p.wait()
    return times, blas, losses, faults


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
                spec = [mode, hidden, batch_size, steps, threads, args.engine == "jit"]
                times, blas, losses, faults = row(checkouts, spec, args.repeats, args.keep_freed_memory)
                this, other = (times[c] for c in checkouts)
                this_faults, other_faults = (faults[c] for c in checkouts)
                ratio = statistics.median(a / b for a, b in zip(this, other, strict=True))
                gap = max(abs(a - b) for a, b in zip(*(losses[c] for c in checkouts), strict=True))
                print(f"| {threads} | {mode} | {hidden}, {batch_size}, {steps} "
                      f"| {statistics.median(this) * 1e3:.1f} | {statistics.median(other) * 1e3:.1f} "
                      f"| {ratio:.2f} | {gap:.1e} "
                      f"| {statistics.median(this_faults):,.0f} / {statistics.median(other_faults):,.0f} |",
                      flush=True)
    print(f"\nBLAS: {blas[checkouts[0]]}")


if __name__ == "__main__":
    main()
