"""Training steps of one ``train_step.py`` engine in a child process, taken on request over a pipe.

    python -P benchmarks/step_children.py '["TensorgradLM", MODE, H, B, T, THREADS]'

The child imports ``train_step`` from its PYTHONPATH (``-P``: not from this file's folder), so
that a parent can point it at another checkout (``compare_checkouts.py``). It builds the engine
(the name of one of train_step.py's engine classes) from the same initial weights and batch as
train_step.py, sets its BLAS and PyTorch threads, takes two warm-up steps (first-call costs,
caches, the optimizer's state), prints the BLAS libraries it uses as one JSON line, and then
takes one step per line it reads, printing ``[seconds, loss, minor page faults]`` (memory taken
fresh from the system) as one JSON line.

The parent side: ``start`` a child per engine; ``rounds`` asks them for one step each in turn,
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


def start(checkout, spec, keep_freed_memory):
    """A child process taking steps of the engine ``spec`` with the code of ``checkout``."""
    path = os.pathsep.join([checkout, os.path.join(checkout, "benchmarks")])
    env = dict(os.environ, **(KEEP_FREED if keep_freed_memory else {}), PYTHONPATH=path)
    return subprocess.Popen([sys.executable, "-P", os.path.abspath(__file__), json.dumps(spec)],
                            cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def rounds(children, repeats):
    """One step of each child per round, ``repeats`` rounds, the order rotating every round; the
    children are ended afterwards. Returns {name: {"seconds": [...], "loss": [...], "faults": [...]}}
    (one entry per round) and {name: the BLAS it reports}."""
    names = list(children)
    blas = {name: json.loads(children[name].stdout.readline()) for name in names}  # warmed up
    for child in children.values():
        wait_until_idle(child)
    answers = {name: {"seconds": [], "loss": [], "faults": []} for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            children[name].stdin.write("step\n")
            children[name].stdin.flush()
            for field, value in zip(answers[name], json.loads(children[name].stdout.readline())):
                answers[name][field].append(value)
            wait_until_idle(children[name])
    for child in children.values():
        child.stdin.close()
        child.wait()
    return answers, blas


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
    for _ in sys.stdin:
        faults = minor_faults()
        begin = time.perf_counter()
        loss = engine.step(ids, targets)
        seconds = time.perf_counter() - begin
        print(json.dumps([seconds, loss, minor_faults() - faults]), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
