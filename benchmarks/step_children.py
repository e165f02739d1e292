"""Training steps of one ``train_step.py`` engine in a child process, taken on request over a pipe.

    python -P benchmarks/step_children.py '["TensorgradLM", MODE, H, B, T, THREADS]'

The child imports ``train_step`` from its PYTHONPATH (``-P``: not from this file's folder), so
that a parent can point it at another checkout (``compare_checkouts.py``). It builds the engine
(the name of one of train_step.py's engine classes) from the same initial weights and batch as
train_step.py, sets its BLAS and PyTorch threads, takes two warm-up steps (first-call costs,
caches, the optimizer's state), prints the BLAS libraries it uses as one JSON line, and then
takes a burst of steps per line it reads (the line: how many are timed), printing ``[seconds,
loss, minor page faults]`` (per step; faults: memory taken fresh from the system) as one JSON line.

A burst is what training does, steps back to back: one step that is not timed, then the timed
ones, their mean reported. ``rounds`` first times one step of each engine and then asks every
engine for as many as take the slowest about ``BURST_SECONDS``, so that the losses of engines
are compared at the same steps. A single step after the idle wait below is not a training
step's time: it meets caches that other engines' steps have filled, and on these virtual
machines it came out slow and erratic, the more so the more Python an engine runs (2026-12-03,
RNN H = 64, 1 thread, 15 single steps each after the wait: tensorgrad jit 5.9–10.2 ms, hand
NumPy 5.3–8.0; back to back in one process, 5.2 and 4.7); and the first dozen steps after
the warm-up got faster step by step (GRU H = 64, jit: 23 ms down to 16).

The parent side: ``start`` a child per engine; ``rounds`` asks them for a burst each in turn,
and the next only once the last child is idle, so that no engine's threads run beside another
engine's step: after a step, OpenBLAS's idle worker threads spin for about 0.1 s before they
sleep (a full CPU, on a 2-CPU VM), and with 2 threads on 2 CPUs that made the next engine's
step up to several times slower, PyTorch's the most, whether the engines shared a process or not.
"""

import json
import os
import resource
import subprocess
import sys
import time

from threadpoolctl import threadpool_info

# glibc's malloc gives large freed blocks back to the system, and memory taken again comes as
# page faults (on a virtual machine, microseconds per 4 KB page). With these settings it keeps
# and reuses them, so that engines are compared on their arithmetic alone (--keep-freed-memory).
KEEP_FREED = {"MALLOC_TRIM_THRESHOLD_": str(2**40), "MALLOC_MMAP_THRESHOLD_": str(2**30)}
BURST_SECONDS = 0.1  # timed steps back to back per request (see the module docstring)


def start(checkout, spec, keep_freed_memory):
    """A child process taking steps of the engine ``spec`` with the code of ``checkout``."""
    path = os.pathsep.join([checkout, os.path.join(checkout, "benchmarks")])
    env = dict(os.environ, **(KEEP_FREED if keep_freed_memory else {}), PYTHONPATH=path)
    return subprocess.Popen([sys.executable, "-P", os.path.abspath(__file__), json.dumps(spec)],
                            cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def rounds(children, repeats):
    """A burst of steps of each child per round, ``repeats`` rounds, the order rotating every
    round; the children are ended afterwards. Returns {name: {"seconds": [...], "loss": [...],
    "faults": [...]}} (one entry per round, per step) and {name: the BLAS it reports}."""
    names = list(children)
    blas = {name: json.loads(children[name].stdout.readline()) for name in names}  # warmed up
    for child in children.values():
        wait_until_idle(child)
    slowest = max(_burst(children[name], 1)[0] for name in names)
    steps = max(1, round(BURST_SECONDS / slowest))
    answers = {name: {"seconds": [], "loss": [], "faults": []} for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            for field, value in zip(answers[name], _burst(children[name], steps)):
                answers[name][field].append(value)
    for child in children.values():
        child.stdin.close()
        child.wait()
    return answers, blas


def _burst(child, steps):
    """[seconds, loss, faults] per step of a burst of ``steps`` timed steps of ``child``, once idle."""
    child.stdin.write(f"{steps}\n")
    child.stdin.flush()
    answer = json.loads(child.stdout.readline())
    wait_until_idle(child)
    return answer


def wait_until_idle(child, interval=0.02):
    """Return once ``child`` has used no CPU time for ``interval`` seconds (at once if not Linux)."""
    used = None
    while used != (used := _cpu_ticks(child.pid)):
        time.sleep(interval)


def _cpu_ticks(pid):
    """CPU time of process ``pid``, all its threads, in clock ticks; None without /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the fields after the command's name
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def minor_faults():
    """Minor page faults of this process so far (memory taken fresh from the system)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def serve(spec):
    """In the child: build the engine of ``spec``, warm it up, then take a step per line of stdin."""
    import train_step as bench  # the checkout's (this module imported at the top would be circular)

    name, mode, hidden, batch_size, steps, threads = json.loads(spec)
    bench.set_threads(threads)
    engine = getattr(bench, name)(bench.initial_weights(mode, hidden), mode)
    ids, targets = bench.batch(steps, batch_size)
    for _ in range(2):
        engine.step(ids, targets)
    print(json.dumps([(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
                      for i in threadpool_info() if i.get("user_api") == "blas"]), flush=True)
    for line in sys.stdin:
        steps = int(line)
        engine.step(ids, targets)  # after the wait: not timed (see the module docstring)
        faults = minor_faults()
        begin = time.perf_counter()
        for _ in range(steps):
            loss = engine.step(ids, targets)
        seconds = (time.perf_counter() - begin) / steps
        print(json.dumps([seconds, loss, (minor_faults() - faults) / steps]), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
