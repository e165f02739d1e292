"""Build and execute notebooks/08_define_and_run.ipynb (nbformat cells, run with nbclient).

    python scripts/build_notebook_08.py
"""

import pathlib

import nbclient
import nbformat

PATH = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "08_define_and_run.ipynb"

CELLS = [
    ("markdown", r"""# 08 · Define-and-run: the same model, eager and traced

The course notes contrast two ways of building a computation graph:

- **define-and-run**: the network is defined and fixed, then data are fed through the
  predefined network. *Easy to optimise, difficult to debug.*
- **define-by-run**: the network is defined by the forward computation itself, as it runs,
  so conditionals and loops are plain Python.

tensorgrad is define-by-run: every `Function` call computes its result at once and
records itself on the tape. `tg.jit` adds define-and-run on top of it: it runs a function
once, keeps the tape that run recorded as a **plan**, and afterwards replays the plan's
NumPy operations on new arrays. This notebook puts the two modes side by side on one small
character-level LSTM."""),
    ("code", r"""import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import SVG, display

import nn
import tensorgrad as tg
import tensorgrad.functions as F
import tensorgrad.viz as viz
from nn.charlm import CharRNN

nn.set_num_threads(1)
text = "define and run, define by run; " * 80
vocab = nn.data.CharVocab(text)
ids = vocab.encode(text)
V = len(vocab)
tg.manual_seed(0)
model = CharRNN(V, hidden_size=16, num_layers=1, model="lstm")


def window_loss(x, y, state):
    # The window of truncated BPTT: forward over T steps, the mean cross-entropy.
    logits, state = model(x, state)
    return nn.softmax_cross_entropy(logits.reshape(-1, V), y.reshape(-1)), state


def window(t, steps=3, batch=2):
    # Inputs and next-character targets, (steps, batch) each, from position t of the text.
    x = np.stack([ids[t + k * 50:t + k * 50 + steps] for k in range(batch)], axis=1)
    y = np.stack([ids[t + k * 50 + 1:t + k * 50 + steps + 1] for k in range(batch)], axis=1)
    return x, y"""),
    ("markdown", r"""## The eager tape, one box per time step

In eager mode each call records its own graph. The recurrent layer opens a scope per
step, so `make_dot` draws one cluster per time step: the embedding, the input projection of
the whole sequence, then one fused LSTM cell per step, the head and the loss."""),
    ("code", r"""x, y = window(0)
loss, state = window_loss(x, y, None)
loss.backward()
tape = viz.make_dot(loss, params=dict(model.named_parameters()))
display(SVG(tape.pipe(format="svg")))
eager_functions = len(tg.autograd.reachable_functions([loss]))
print(f"the tape of one window: {eager_functions} recorded Functions")"""),
    ("markdown", r"""## The traced plan

`tg.jit(window_loss)` returns a function with the same arguments and results. Its first
call for a signature (the shapes, dtypes and `requires_grad` of the array arguments, the
other arguments by value, the grad mode) runs eagerly and keeps what the tape recorded —
every Function call, recorded or not — as a list of steps over *slots* of an environment
of arrays. The integer ids and targets are inputs of the plan too, and the parameters are
read at every replay, so an optimizer's updates are seen. The backward pass is planned at
the same time: the loss calls its array-level `numpy_backward`; for every other Function
its backward, written in Variable operations, is run once and the operations it performs
become steps. The 50 fused LSTM cells are planned together: the planner sees that each
one's state is the next one's input and that they share Wₕₕ, and plans them as one
*recurrence* — one loop over the cells' array-level equations forward, and BPTT in one
loop backward — drawn as one box `lstm_cell × 50`."""),
    ("code", r"""jitted = tg.jit(window_loss)
jitted(x, y, None)  # traced (the result is the eager run's)
plan = jitted.plan
print(plan)"""),
    ("code", r"""drawing = viz.make_dot(plan, params=dict(model.named_parameters()))
display(SVG(drawing.pipe(format="svg")))"""),
    ("markdown", r"""A later call with the same signature replays the plan: it calls each step's
`forward` on the new arrays, in the recorded order, and makes no Function and no Variable
per operation. The whole replay is recorded on the tape as **one** node, whose backward
runs the backward plan. The gradients are the eager run's, bit for bit: the same NumPy
operations run in the same order, and the gradients reaching one array are added in the
order the eager engine adds them."""),
    ("code", r"""def gradients(fn, x, y):
    model.zero_grad()
    loss, _ = fn(x, y, None)
    loss.backward()
    return loss, [p.grad.data.copy() for p in model.parameters()]


x2, y2 = window(7)
eager_loss, eager_grads = gradients(window_loss, x2, y2)
replay_loss, replay_grads = gradients(jitted, x2, y2)
assert jitted.traces == 1  # replayed, not traced again
assert replay_loss.item() == eager_loss.item()
assert all(np.array_equal(a, b) for a, b in zip(eager_grads, replay_grads))
print(f"loss {replay_loss.item():.6f} (eager {eager_loss.item():.6f}); the tape of the replay:",
      [type(f).__name__ for f in tg.autograd.reachable_functions([replay_loss])])"""),
    ("markdown", r"""## Speed

The cost of an operation in eager mode is its arithmetic plus the Python around it: the
Function object, a Variable per output, the bookkeeping of the tape, and in backward the
engine's walk over the nodes. A replay keeps the arithmetic and drops most of the rest.
The smaller the arrays, the more of a step is Python, so the difference shows most on a
small model. Below, a window of 50 steps with a batch of 32, hidden size 16 and 64, the two
modes timed in alternation (the machine is shared, so each is the median of several runs)."""),
    ("code", r"""def step_time(fn, x, y, repeats=7):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss, _ = fn(x, y, None)
        loss.backward()
        times.append(time.perf_counter() - start)
    return times


rows = []
for hidden in (16, 64):
    tg.manual_seed(0)
    model = CharRNN(V, hidden_size=hidden, num_layers=1, model="lstm")
    fast = tg.jit(window_loss)
    xb, yb = window(0, steps=50, batch=32)
    for fn in (window_loss, fast):
        step_time(fn, xb, yb, repeats=2)  # warm up (and trace)
    eager_times, jit_times = [], []
    for _ in range(5):  # alternate, so that both see the same load
        eager_times += step_time(window_loss, xb, yb, repeats=1)
        jit_times += step_time(fast, xb, yb, repeats=1)
    rows.append((hidden, np.median(eager_times) * 1e3, np.median(jit_times) * 1e3))

for hidden, eager_ms, jit_ms in rows:
    print(f"H = {hidden:3d}: eager {eager_ms:6.1f} ms, jit {jit_ms:6.1f} ms per window "
          f"(forward + backward), eager / jit = {eager_ms / jit_ms:.2f}")
fig, ax = plt.subplots(figsize=(5, 3))
positions = np.arange(len(rows))
ax.bar(positions - 0.2, [r[1] for r in rows], 0.4, label="eager")
ax.bar(positions + 0.2, [r[2] for r in rows], 0.4, label="jit (replay)")
ax.set_xticks(positions, [f"H = {r[0]}" for r in rows])
ax.set_ylabel("ms per window")
ax.legend()
plt.show()"""),
    ("markdown", r"""What the replay still makes per window can be counted: one node on the tape, one
*frame* — a copy of the Function that keeps this replay's saved arrays, so that two
replays whose backward is pending do not share them — for each Function with an
array-level backward outside a recurrence (here the loss), and one list of saved arrays
for the recurrence. Every other step, forward or backward, is a plain call of a `forward`
on arrays. Eager mode makes every Function, every Variable, and walks the tape in
backward."""),
    ("code", r"""loss, _ = window_loss(xb, yb, None)
recorded = tg.autograd.reachable_functions([loss])
plan = fast.plan
loops = [step for step in plan.forward if type(step).__name__ == "Recurrence"]
print(f"eager: {len(recorded)} Functions recorded per window (and a Variable per output); "
      f"replay: 1 node, {plan.frames} frame and {len(loops)} recurrence ({loops[0].label}), "
      f"{len(plan.forward)} forward and {len(plan.backward)} backward steps")
assert plan.frames == 1 and len(loops) == 1 and len(loops[0].gate_inputs) == 50
assert sum(hasattr(f, "numpy_backward") for f in recorded) == 51  # in eager mode: 50 cells and the loss"""),
    ("markdown", r"""## What the trace freezes

A trace sees operations, not Python. Every decision the function takes from values
(`if loss.item() > 3`), from Python state (a module's `training` flag) or from NumPy code
outside the tape is taken once, at trace time, and replayed as it was taken. Here a
function halves its loss when the loss is large, a decision on a value:"""),
    ("code", r"""def damped(x):
    total = (x * x).sum()
    if total.item() > 10:  # a value branch
        return total * 0.5
    return total


jd = tg.jit(damped)
small, large = np.ones(2), np.full(2, 10.0)
print("traced on a small input:", jd(small).item())
print("replayed on a large input:", jd(large).item(), "  eager:", damped(large).item())
assert jd(large).item() == 200.0 and damped(large).item() == 100.0"""),
    ("markdown", r"""The replay took the branch of the trace: 200, where eager mode gives 100, and the trace
said so when it happened: `total.item()` inside a traced function gives a `TraceWarning` at
that line (as PyTorch's tracer warns), since the value leaves the tape there. The same holds
for `model.eval()` after a trace in training mode (dropout keeps dropping), for a loop
whose length depends on a value, and for any constant computed with NumPy from `.data`.
Comparisons are not frozen: `x > 0` is a Function without gradient, replayed on each call's
values, so a mask computed from the data follows the data.
The signature protects what it can see — a new shape, dtype, `requires_grad`, grad mode or
non-array argument traces again — and the tracer refuses what it can detect: a Variable
built from a view of a traced array, or an array argument the traced operations never read
(its values must have been used outside the tape)."""),
    ("code", r"""W = tg.Variable(np.ones((2, 2)))


def sneaky(x, y):
    return (x @ W * float(y.data.sum())).sum()  # y's value read with NumPy: frozen


try:
    tg.jit(sneaky)(np.ones((2, 2)), np.ones(2))
except tg.TraceError as error:
    print("TraceError:", error)"""),
    ("markdown", r"""Random Functions are the exception that must *not* be frozen: dropout is a random-mask
Function times a product, and the mask Function draws new numbers at every replay."""),
    ("code", r"""drop = tg.jit(lambda x: F.dropout(x, 0.5))
ones = np.ones((4, 8), np.float32)
masks = [drop(ones).data for _ in range(3)]
print((masks[1] != 0).astype(int))
assert drop.traces == 1 and not np.array_equal(masks[1], masks[2])"""),
    ("markdown", r"""## Why the plan can do what eager mode cannot

Eager mode sees one operation at a time: when a cell's backward runs it cannot know that
the same weight will get 49 more gradients, that nobody will read an intermediate, or when
an array is last used. The plan sees the whole computation before it runs it:

- **one loop per recurrence.** The cells of a layer form a chain (each step's state is the
  next one's input, all share Wₕₕ), so the plan runs them as a hand-written BPTT does:
  forward, one loop over the cell's equations on arrays; backward, one loop that carries
  ∂L/∂hₜ from step to step — without an object per cell in either direction. What the
  layer would cut into steps and stack again (the input side aₜ, the outputs hₜ and their
  gradients) the loop reads and writes as rows of one array each. It plans a chain so only
  where that is faithful (nothing between the cells reads their states), and the values
  stay the eager run's, bit for bit;

- **one matmul for a weight's gradient over all steps.** The hidden-side weight Wₕₕ of a
  recurrent layer gets a term ∂L/∂bₜᵀ hₜ at every step. Eager mode adds T thin products;
  the plan (with `sum_weight_gradients=True`) computes
  [∂L/∂b₁; …; ∂L/∂b_T]ᵀ [h₀; …; h_{T-1}] in one product, as a hand-written BPTT does. The
  sum is rounded in another order, so this one gradient differs from eager mode's in the
  last bits — which is why it is an option and not the default;
- **dead work dropped**: a step whose result nobody reads (the gradient of a constant
  operand, an unused output) is not planned;
- **memory freed at the last use** of each slot, known in advance, forward and backward."""),
    ("code", r"""tg.manual_seed(0)
model = CharRNN(V, hidden_size=16, num_layers=1, model="lstm")
summed = tg.jit(window_loss, sum_weight_gradients=True)
xb, yb = window(0, steps=20, batch=4)
_, exact_grads = gradients(window_loss, xb, yb)
summed(xb, yb, None)
_, summed_grads = gradients(summed, xb, yb)
names = [name for name, _ in model.named_parameters()]
print([repr(step) for step in summed.plan.backward if getattr(step, "summed", False)])
for name, a, b in zip(names, exact_grads, summed_grads):
    print(f"{name:18s} max relative difference {np.abs(a - b).max() / np.abs(a).max():.1e}")
w = names.index("rnn.weight_hh_l0")
assert 0 < np.abs(exact_grads[w] - summed_grads[w]).max() < 1e-5 * np.abs(exact_grads[w]).max()
assert all(np.array_equal(a, b) for i, (a, b) in enumerate(zip(exact_grads, summed_grads)) if i != w)"""),
    ("markdown", r"""## Summary

| | eager (define-by-run) | `tg.jit` (define-and-run) |
|---|---|---|
| graph | recorded anew at every call | recorded once per signature, replayed |
| Python per operation | a Function, Variables, tape bookkeeping | a call of the step's `forward` |
| branches, loops on values | follow the data | frozen at trace time |
| debugging | every intermediate is a Variable | the plan's steps and slots (`print(fn.plan)`) |
| whole-computation plans | no | loop per recurrence, one-matmul Wₕₕ gradient, dead steps cut, early frees |

`tensorgrad train` and `nn.TBPTT` run each window through `tg.jit` by default (`--no-jit`,
`jit=False` to turn it off), with exactly the losses of eager mode."""),
]


def main():
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook.cells = [nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                      else nbformat.v4.new_code_cell(source) for kind, source in CELLS]
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(PATH.parent)}}).execute()
    nbformat.write(notebook, PATH)
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
