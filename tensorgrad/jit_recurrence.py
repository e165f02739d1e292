"""A recurrence in a ``tg.jit`` plan: the steps of a fused cell over a sequence, run from one loop.

A recurrent layer records one fused cell per time step, (hₜ₊₁[, cₜ₊₁]) = cell(aₜ, hₜ[, cₜ],
Wₕₕ[, bₕₕ]), each step's state the next one's input. Replayed cell by cell, every step
costs a copy of the Function (a frame, to hold what its forward saved) in forward and a
call of its ``numpy_backward`` in backward: Python of the size of the step's arithmetic
when the matrices are small. The planner sees the whole chain, so it plans it as two steps:

- :class:`Recurrence` runs the cell's array-level equations (``gates``, see
  :class:`~tensorgrad.functions.cells._FusedCell`) for t = 0 … T-1 in one loop and keeps
  the states and what each step saved;
- :class:`RecurrenceBackward` runs ``gates_backward`` for t = T-1 … 0, carrying ∂L/∂hₜ
  (and ∂L/∂cₜ) from step to step as BPTT does, and adds the gradients of Wₕₕ and bₕₕ.

The NumPy operations are those of the cells, in the eager engine's order, so a replay
gives the eager run's values bit for bit; with ``sum_weight_gradients`` Wₕₕ's gradient is
one matmul over all steps, Σₜ ∂L/∂bₜᵀ hₜ, as a hand-written BPTT computes it.

A chain is planned so only where that is faithful: the steps between its first and last
cell read none of its states (so the loop may run where the last cell was, and every
gradient reaching a state from outside the chain is known before its backward starts);
its operands share one dtype; and, unless the weight gradients are summed anyway, its
inputs and weights are read by no other recorded operation (so that no gradient is added
to theirs in another order than eager mode's). Other cells stay frames.

What the layer stacks around the loop, the loop writes in place (:func:`stack_in_place`):
the states hₜ as the rows of one array that holds h₀ too (the layer's stacked output is a view
of it, and so are the h rows of the one-matmul Wₕₕ gradient), and the ∂L/∂aₜ as the rows of
the gradient of the layer's whole input side, so that neither is copied after the loop.
What the layer unbinds for the loop, it reads as rows (:func:`unbind_in_place`): the aₜ of
the input side, and the ∂L/∂hₜ₊₁ of the stacked output, without a view per step made before.
"""

import collections
import itertools

import numpy as np

from tensorgrad.functions.cells import bias_gradient, weight_gradient
from tensorgrad.jit_buffers import Buffer


def is_fused_cell(function):
    """Whether ``function`` writes its equations as ``gates``/``gates_backward`` (a fused cell)."""
    return hasattr(type(function), "gates_backward")


def find_chains(forward, functions, recorded_readers, dtype, summed):
    """The chains of fused-cell steps in ``forward`` that can be planned as a Recurrence: lists
    of step indices in time order.

    ``functions[k]``: the traced Function of step k; ``recorded_readers``: slot -> the indices
    of the recorded steps reading it; ``dtype``: slot -> dtype; ``summed``: whether weight
    gradients are summed over the steps (then readers outside the chain do not matter).
    """
    cells = {k: step for k, step in enumerate(forward) if step.frame and is_fused_cell(functions[k])}
    by_state = {}  # the state slots a cell reads -> the cells reading them
    for k, step in cells.items():
        by_state.setdefault(_state_inputs(step, functions[k]), []).append(k)
    successor, has_predecessor = {}, set()
    for k, step in cells.items():
        readers = by_state.get(step.outputs, [])
        if len(readers) == 1 and _same_cell(step, functions[k], cells[readers[0]], functions[readers[0]]):
            successor[k] = readers[0]
            has_predecessor.add(readers[0])
    chains = []
    for k in sorted(set(cells) - has_predecessor):
        chain = [k]
        while chain[-1] in successor:
            chain.append(successor[chain[-1]])
        if len(chain) > 1 and _faithful(chain, forward, functions, recorded_readers, dtype, summed):
            chains.append(chain)
    return chains


def _state_inputs(step, function):
    return step.inputs[1:1 + function.states]


def _same_cell(a, function_a, b, function_b):
    """Whether steps a and b run the same cell (class, options) on the same weights."""
    return (type(function_a) is type(function_b) and function_a.name == function_b.name
            and a.inputs[1 + function_a.states:] == b.inputs[1 + function_b.states:]
            and a.bindings == b.bindings)


def _faithful(chain, forward, functions, recorded_readers, dtype, summed):
    """Whether one loop over ``chain`` computes what its cells compute, in the eager order
    (the conditions of the module docstring)."""
    members = set(chain)
    states = {s for k in chain for s in forward[k].outputs}
    between = (forward[j] for j in range(chain[0] + 1, chain[-1]) if j not in members)
    if any(states.intersection(step.reads()) for step in between):
        return False
    operands = [s for k in chain for s in forward[k].inputs]
    inputs = [(forward[k].inputs, functions[k].states) for k in chain]
    not_states = (s for ins, n in inputs for s in ins[:1] + ins[1 + n:])
    if any(s in states for s in not_states):  # aₜ, Wₕₕ, bₕₕ computed from the chain's own states
        return False
    if len({dtype[s] for s in operands}) != 1:
        return False
    if summed:
        return True
    outside = (j for s in set(operands) - states for j in recorded_readers.get(s, ()))
    return all(j in members for j in outside)


class Recurrence:
    """Steps t = 0 … T-1 of one fused cell in one loop, (hₜ₊₁[, cₜ₊₁]) = cell(aₜ, hₜ[, cₜ], Wₕₕ[, bₕₕ]).

    ``gate_inputs``: the slots of a₀ … a_{T-1}; ``initial``: of h₀[, c₀]; ``step_outputs``: of
    each step's (hₜ₊₁[, cₜ₊₁]). ``function``: the cell (a template), whose ``bindings`` (Wₕₕᵀ
    in C order) the plan sets before ``run``. What backward needs is kept in ``frames[k]``.
    """

    __slots__ = ("k", "function", "bindings", "gate_inputs", "initial", "weight", "bias", "step_outputs",
                 "label", "scope", "stacked", "rows", "unbound", "input_rows", "hs_buffer")
    frame = False

    def __init__(self, k, cells, functions):
        first, last = cells[0], cells[-1]
        states = functions[0].states
        self.k, self.function, self.bindings = k, last.function, last.bindings
        self.gate_inputs = tuple(step.inputs[0] for step in cells)
        self.initial = first.inputs[1:1 + states]
        self.weight = first.inputs[1 + states]
        self.bias = first.inputs[2 + states] if len(first.inputs) == 3 + states else None
        self.step_outputs = tuple(step.outputs for step in cells)
        self.label = f"{self.function.name} × {len(cells)}"
        self.scope = _common_scope([getattr(f, "scope", None) for f in functions])
        self.stacked, self.rows = None, None  # see stack_in_place
        self.unbound, self.input_rows = None, None  # see unbind_in_place
        self.hs_buffer = Buffer()  # hs from call to call (see tensorgrad.jit_buffers)

    def reads(self):
        hidden_side = (self.weight,) if self.bias is None else (self.weight, self.bias)
        inputs = self.gate_inputs if self.unbound is None else (self.unbound,)
        return inputs + self.initial + hidden_side + tuple(b[2] for b in self.bindings)

    def writes(self):
        stacked = () if self.stacked is None else (self.stacked,)
        return tuple(s for outputs in self.step_outputs for s in outputs) + stacked

    def run(self, env, frames):
        """The steps; with ``stacked``, each hₜ₊₁ written as a row of one array hs of T + 1 rows
        that also holds h₀, in time order: the stacked outputs and the steps' h inputs are then
        both views of it (``frames[k]`` keeps the latter, for a weight gradient over all steps)."""
        cell = self.function
        gates, hidden_side = cell.gates, cell.hidden_side
        W = env[self.weight]
        bias = None if self.bias is None else env[self.bias]
        state = tuple(env[s] for s in self.initial)
        outs = [None] * len(self.gate_inputs)  # where each hₜ₊₁ goes: a row of hs, or a new array
        h_inputs = None
        if self.stacked is not None:
            h0 = state[0]
            hs = self.hs_buffer.take((len(self.rows) + 1,) + h0.shape, h0.dtype)
            forward = self.rows[0] == 0  # else reversed: h₀ after the last row
            outs = [hs[r + 1] for r in self.rows] if forward else [hs[r] for r in self.rows]
            hs[0 if forward else -1] = h0
            env[self.stacked], h_inputs = (hs[1:], hs[:-1]) if forward else (hs[:-1], hs[1:])
        if self.unbound is None:
            inputs = [env[s] for s in self.gate_inputs]
        else:
            A = env[self.unbound]
            inputs = [A[r] for r in self.input_rows]
        record = frames is not None  # else what a step saves is dropped at once
        states, saved = [state], []
        for a, out in zip(inputs, outs, strict=True):
            state, kept = gates(a, hidden_side(state[0], W, bias), *state, out=out)
            states.append(state)
            if record:
                saved.append(kept)
        for outputs, arrays in zip(self.step_outputs, states[1:], strict=True):
            for s, y in zip(outputs, arrays, strict=True):
                env[s] = y
        if record:
            frames[self.k] = states, saved, (h_inputs, self.rows)

    def __repr__(self):
        inputs = f"s{self.gate_inputs[0]} …" if self.unbound is None else f"rows of s{self.unbound}"
        return (f"s{self.step_outputs[-1][0]}, … = {self.label}({inputs}, "
                f"{', '.join(f's{s}' for s in self.initial)}, s{self.weight})")


def _common_scope(scopes):
    """The innermost scope holding all of ``scopes`` (a layer's, for its steps t=0, t=1, …)."""
    parts = [s.split("/") for s in scopes if s]
    if len(parts) < len(scopes):
        return None
    common = []
    for names in zip(*parts, strict=False):
        if len(set(names)) > 1:
            break
        common.append(names[0])
    return "/".join(common) or None


class RecurrenceBackward:
    """BPTT through a :class:`Recurrence`: for t = T-1 … 0, with ∂L/∂hₜ₊₁ the gradient from
    outside the chain (``grad_outputs``, None for none) plus the one carried from step t+1,
    ``gates_backward`` gives ∂L/∂bₜ and ∂L/∂aₜ, and ∂L/∂hₜ = ∂L/∂bₜ Wₕₕ (+ its direct part).
    ∂L/∂Wₕₕ = Σₜ ∂L/∂bₜᵀ hₜ and ∂L/∂bₕₕ = Σₜ Σ_rows ∂L/∂bₜ: added step by step in eager mode's
    order, or (``summed``) as one matmul over the rows of all steps.

    ``stacked``: the slot of [∂L/∂a₀; …] stacked (set by :func:`stack_in_place`, else None),
    written as rows ``rows[t]`` of one array while the steps run, instead of copied after.
    """

    __slots__ = ("k", "function", "weight", "grad_outputs", "grad_gate_inputs", "grad_initial",
                 "grad_weight", "grad_bias", "summed", "shape", "dtype", "label", "stacked", "rows",
                 "unbound", "input_rows", "grad_b_buffer", "grad_a_buffer")

    def __init__(self, recurrence, grad_outputs, grad_gate_inputs, grad_initial, grad_weight, grad_bias,
                 summed, shape, dtype):
        self.k, self.function, self.weight = recurrence.k, recurrence.function, recurrence.weight
        self.grad_outputs, self.grad_gate_inputs = grad_outputs, grad_gate_inputs
        self.grad_initial = grad_initial
        self.grad_weight, self.grad_bias, self.summed = grad_weight, grad_bias, summed
        self.shape, self.dtype = shape, dtype  # of one aₜ (and ∂L/∂bₜ)
        self.label = f"BPTT: {recurrence.label}"
        self.stacked, self.rows = None, tuple(range(len(grad_outputs)))
        self.unbound, self.input_rows = None, None  # see unbind_in_place: the slot of [∂L/∂h₁; …], rows
        self.grad_b_buffer, self.grad_a_buffer = Buffer(), Buffer()  # the rows ∂L/∂bₜ, ∂L/∂aₜ, kept

    def reads(self):
        grads = self.grad_outputs if self.unbound is None else [g[1:] for g in self.grad_outputs]
        unbound = () if self.unbound is None else (self.unbound,)
        return unbound + tuple(s for g in grads for s in g if s is not None) + (self.weight,)

    def writes(self):
        grads = self.grad_gate_inputs + self.grad_initial + (self.grad_weight, self.grad_bias, self.stacked)
        return tuple(s for s in grads if s is not None)

    def run(self, env, frames):
        states, saved, (h_inputs, h_rows) = frames[self.k]
        cell, W, rows = self.function, env[self.weight], self.rows
        steps = len(saved)
        whole = (steps,) + self.shape
        stacked, apart = self.stacked is not None, not cell.grad_a_is_grad_b
        grad_b_rows = grad_a_rows = None
        if self.summed or (stacked and not apart):
            grad_b_rows = self.grad_b_buffer.take(whole, self.dtype)
        if stacked and apart:  # the GRU's [∂L/∂aₜ]
            grad_a_rows = self.grad_a_buffer.take(whole, self.dtype)
        outside = [[None if s is None else env[s] for s in grads] for grads in self.grad_outputs]
        if self.unbound is not None:
            G = env[self.unbound]
            for grads, r in zip(outside, self.input_rows, strict=True):
                grads[0] = G[r]
        grad_b_at = [None] * steps if grad_b_rows is None else [grad_b_rows[r] for r in rows]
        gates_backward, gate_inputs = cell.gates_backward, self.grad_gate_inputs
        carried = [None] * len(states[0])  # ∂L/∂hₜ₊₁ (and ∂L/∂cₜ₊₁) from step t+1
        grad_W = grad_bias = None
        for t in reversed(range(steps)):
            grads = list(map(_total, outside[t], carried, states[t + 1]))  # map: no comprehension per step
            grad_b = grad_b_at[t]
            if grad_b is None:
                grad_b = np.empty(self.shape, self.dtype)
            grad_a, grad_h_direct, *grad_more_state = gates_backward(saved[t], grad_b, *grads)
            if grad_a_rows is not None:
                grad_a_rows[rows[t]] = grad_a
            if gate_inputs[t] is not None:
                env[gate_inputs[t]] = grad_a
            grad_h = None
            if t > 0 or self.grad_initial[0] is not None:
                # ∂L/∂hₜ₊₁ is read no more: when it is the loop's own array, ∂L/∂hₜ goes into it
                grad_h = np.matmul(grad_b, W, out=grads[0] if carried[0] is not None else None)
                if grad_h_direct is not None:
                    grad_h += grad_h_direct
            carried = [grad_h, *grad_more_state]
            if not self.summed:
                if self.grad_weight is not None:
                    grad_W = _add(grad_W, weight_gradient(grad_b, states[t][0]))
                if self.grad_bias is not None:
                    grad_bias = _add(grad_bias, bias_gradient(grad_b))
        for s, g in zip(self.grad_initial, carried, strict=True):
            if s is not None:
                env[s] = g
        if self.summed:
            if self.grad_weight is not None:
                if h_rows != rows:  # the forward steps' h inputs are not rows of one array in this order
                    h_inputs = np.stack([states[t][0] for t in sorted(range(steps), key=rows.__getitem__)])
                grad_W = weight_gradient(grad_b_rows, h_inputs)
            if self.grad_bias is not None:
                grad_bias = bias_gradient(grad_b_rows)
        if self.grad_weight is not None:
            env[self.grad_weight] = grad_W
        if self.grad_bias is not None:
            env[self.grad_bias] = grad_bias
        if stacked:
            env[self.stacked] = grad_b_rows if grad_a_rows is None else grad_a_rows

    def __repr__(self):
        written = self.writes()
        outs = f"s{written[0]} … s{written[-1]}" if len(written) > 2 else ", ".join(f"s{s}" for s in written)
        return f"{outs} = {self.label} (#{self.k})"


def stack_in_place(forward, backward, is_stack):
    """Let each recurrence write, as the rows of one array, what the layer stacks after it: its
    outputs h₁ … h_T (forward), and its ∂L/∂a₀ … ∂L/∂a_{T-1} (the backward of the layer's unbind
    of the input side), in time order or reversed; the Stack steps are then dropped (None in
    ``forward``, which is indexed by trace position; left out of the returned backward).
    ``is_stack(step)``: whether a step stacks its inputs along axis 0."""
    for step in forward:
        if type(step) is Recurrence:
            h = tuple(outputs[0] for outputs in step.step_outputs)
            found = _stacking(forward, h, is_stack)
            if found is not None:
                j, step.stacked, step.rows = found
                forward[j] = None
    kept = list(backward)
    for step in backward:
        if type(step) is RecurrenceBackward and None not in step.grad_gate_inputs:
            found = _stacking(kept, step.grad_gate_inputs, is_stack)
            if found is not None:
                j, step.stacked, step.rows = found
                del kept[j]
    return kept


def _stacking(steps, slots, is_stack):
    """(index, output slot, rows) of the step of ``steps`` stacking exactly ``slots`` (rows: where
    each goes), in their order or reversed; or None."""
    for j, step in enumerate(steps):
        if step is not None and is_stack(step):
            if step.inputs == slots:
                return j, step.outputs[0], tuple(range(len(slots)))
            if step.inputs == slots[::-1]:
                return j, step.outputs[0], tuple(reversed(range(len(slots))))
    return None


def unbind_in_place(forward, backward, is_unbind, kept):
    """Let each recurrence read, as the rows of one array, what the layer unbinds for it: its inputs
    a₀ … a_{T-1} (forward: the unbind of the input side), and the gradients ∂L/∂h₁ … ∂L/∂h_T from
    outside the chain (backward: the unbind that is the backward of the layer's stack). An
    Unbind step whose outputs only the recurrence reads is then dropped (None in ``forward``;
    left out of the returned backward). ``is_unbind(step)``: whether a step unbinds axis 0;
    ``kept``: slots read after the plan (its outputs)."""
    readers = collections.Counter(kept)
    for step in itertools.chain(forward, backward):
        if step is not None:
            readers.update(step.reads())
    for step in forward:
        if type(step) is Recurrence:
            found = _unbinding(forward, step.gate_inputs, is_unbind, readers)
            if found is not None:
                j, step.unbound, step.input_rows = found
                forward[j] = None
    backward = list(backward)
    for step in list(backward):
        if type(step) is RecurrenceBackward:
            found = _unbinding(backward, tuple(grads[0] for grads in step.grad_outputs), is_unbind, readers)
            if found is not None:
                j, step.unbound, step.input_rows = found
                del backward[j]
    return backward


def _unbinding(steps, slots, is_unbind, readers):
    """(index, input slot, rows) of the step of ``steps`` unbinding the rows that are ``slots``
    (rows: which row each is), if nothing else reads them; or None."""
    for j, step in enumerate(steps):
        if step is not None and is_unbind(step) and set(step.outputs) == set(slots):
            if len(slots) == len(step.outputs) and all(readers[s] == 1 for s in slots):
                row = {s: i for i, s in enumerate(step.outputs)}
                return j, step.inputs[0], tuple(row[s] for s in slots)
            return None
    return None


def _total(outer, inner, like):
    """A state's whole gradient: from outside the chain plus from the next step (added into
    ``inner``, the loop's own array); zeros (shaped as ``like``) when neither reached it."""
    if outer is None:
        return np.zeros_like(like) if inner is None else inner
    return _add(inner, outer)


def _add(total, g):
    """``total`` + ``g``, in place into a total of the loop's own (``total`` None: ``g`` itself)."""
    if total is None:
        return g
    total += g
    return total
