"""The planner of ``tg.jit``: the Function calls of one traced run turned into a plan.

The trace (``trace`` in :mod:`tensorgrad.jit`) hands the planner every Function call of
one eager run. The planner gives every array a slot and every call a forward step
(:mod:`tensorgrad.jit_steps`), and plans the backward pass at trace time:

- a Function with an array-level backward (``numpy_backward``) is a step that calls it. Its
  ``numpy_backward`` reads what its forward saved and its ``inputs``, so each replay runs
  such a Function on a copy of its own (a *frame*, whose ``inputs`` and ``outputs`` hold
  this replay's arrays): two replays whose backward is pending never share saved arrays.
  These Functions (the cross-entropy, fused cells outside a recurrence) are the only ones
  with an object per replay;
- the fused cells of a recurrent layer, a chain over the time steps sharing Wₕₕ, are
  planned as one recurrence (:mod:`tensorgrad.jit_recurrence`): one loop over the cell's
  array-level equations forward, BPTT in one loop backward, without an object per cell;
- any other Function's backward, written in Variable operations, is run once at trace time
  and the operations it performs are recorded as steps (a traced backward), so that
  replaying them computes its gradients from the new arrays;
- gradients reaching one array from several consumers are added in the order the eager
  engine adds them, so a replay gives the eager run's values bit for bit.

The planner also does what only a view of the whole computation allows: it runs each
recurrence from one loop, drops steps whose results nobody reads (except random ones),
frees each slot after its last use, and (``sum_weight_gradients=True``) computes a
recurrent weight's gradient over all the steps of a sequence in one matmul.

Where a replay could not be faithful (an array computed outside the tape from one of the
trace's, an array argument nothing reads, a gradient computed outside the tape), it
raises :class:`TraceError`.
"""

import collections

import numpy as np

from tensorgrad.functions.shape import Stack, Unbind
from tensorgrad.jit_plan import Plan
from tensorgrad.jit_recurrence import (
    Recurrence,
    RecurrenceBackward,
    find_chains,
    stack_in_place,
    unbind_in_place,
)
from tensorgrad.jit_steps import (
    TAPE_ATTRIBUTES,
    Accumulate,
    Cast,
    Empty,
    NumpyBackward,
    Step,
    WeightGradient,
    Zeros,
)
from tensorgrad.modes import TraceError, set_grad_enabled, state
from tensorgrad.variable import Variable


def _root(array):
    """The array that owns the memory of ``array`` (itself, or the base of its views)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


class Planner:
    """Turns a trace (the Function calls of one eager run) into a :class:`Plan`.

    Every array of the trace gets a slot: the arguments', the leaves' the function read,
    each call's outputs and, for the backward plan, each gradient. Variables are mapped to
    slots by identity, and so are arrays held by a Function as constants (the ids of an
    embedding): an array that *is* one of the trace's arrays is read from its slot at every
    replay; one that merely shares memory with them was computed outside the tape, and is
    an error.
    """

    def __init__(self, arguments, calls, outputs, rebuild, name):
        self.calls, self.outputs, self.rebuild, self.name = calls, outputs, rebuild, name
        self.size = 0
        self.slot = {}  # id(Variable) -> slot
        self.array_slot = {}  # id(ndarray) -> slot, for arrays that Functions hold as constants
        self.roots = {}  # id(root array) -> slot, to recognise views made outside the tape
        self.inputs = []  # (slot, Variable or None): the replay node's inputs, arguments first
        self.leaves = []  # (slot, Variable): leaves read at every replay that need no gradient
        self.constants = []  # (slot, array): constants made by the traced backward
        self.requires_grad = {}  # slot -> whether its Variable requires a gradient
        self.dtype = {}  # slot -> dtype, for the casts of gradients
        self.shape = {}  # slot -> shape, for drawings
        self.sums = set()  # the slots of gradient sums made by the plan: added to in place
        self.keep_alive = [arguments, calls]  # ids stay unique while planning
        self.arguments = len(arguments)
        for v in arguments:
            self.inputs.append((self._new(v), v))

    # ------------------------------------------------------------------ slots
    def _new(self, v):
        s = self.size
        self.size += 1
        self.slot[id(v)] = s
        self.array_slot.setdefault(id(v.data), s)
        self.roots.setdefault(id(_root(v.data)), s)
        self.requires_grad[s] = v.requires_grad
        self.dtype[s] = v.data.dtype
        self.shape[s] = v.data.shape
        return s

    def _slot_of(self, v, backward):
        """The slot of input ``v`` of a traced call; a Variable from outside the trace becomes one."""
        s = self.slot.get(id(v))
        if s is not None:
            return s
        s = self.array_slot.get(id(v.data))
        if s is not None and not v.requires_grad:  # an argument's ndarray, or a detached array of the trace
            self.slot[id(v)] = s
            return s
        if s is not None or id(_root(v.data)) in self.roots:
            raise TraceError(f"jit({self.name}): a Variable of shape {v.shape} was built from the data of an "
                             "array of the trace (a view or .data of it), outside the tape; a replay would "
                             "not see the new values. Compute it with Variable operations")
        self.keep_alive.append(v)
        s = self._new(v)
        if backward:  # made by a Function's backward while tracing it: a constant
            self.constants.append((s, v.data))
        elif v.requires_grad or v.creator is not None:
            self.inputs.append((s, v))  # a parameter, or a Variable recorded before the call
        else:
            self.leaves.append((s, v))
        return s

    def _bindings(self, function, own_inputs):
        """(attribute, index in a tuple or None, slot) for the arrays ``function`` holds that are
        arrays of the trace; an error for arrays sharing memory with them that are not."""
        bindings = []
        own_roots = {id(_root(a)) for a in own_inputs}
        for name, value in vars(function).items():
            if name in TAPE_ATTRIBUTES:
                continue
            items = [(None, value)] if isinstance(value, np.ndarray) else (
                list(enumerate(value)) if isinstance(value, tuple) else [])
            for index, item in items:
                if not isinstance(item, np.ndarray):
                    continue
                s = self.array_slot.get(id(item))
                if s is not None:
                    bindings.append((name, index, s))
                elif id(_root(item)) in self.roots and id(_root(item)) not in own_roots:
                    raise TraceError(f"jit({self.name}): {function.name} holds an array ({name}) that shares "
                                     "memory with an array of the trace but was computed outside the tape; "
                                     "a replay would use the traced values. Pass it as a Function input")
        return tuple(bindings)

    def _step(self, function, inputs, outputs, backward):
        """One traced call as a plan step (function, input slots, output slots, bindings)."""
        ins = tuple(self._slot_of(x, backward) for x in inputs)
        binds = self._bindings(function, [x.data for x in inputs])
        outs = tuple(self._new(y) for y in outputs)
        return Step(function, ins, outs, binds, tuple(x.requires_grad for x in inputs))

    # ------------------------------------------------------------------ the plans
    def plan(self, sum_weight_gradients=False):
        forward = [self._step(f, ins, outs, False) for f, ins, outs in self.calls]
        for step in forward:
            step.frame = bool(step.outputs) and _has_numpy_backward(step.function)
        self.sum_weight_gradients = sum_weight_gradients
        self._recurrences(forward)
        self.sequences, self.sequence_lengths = {}, {}
        if sum_weight_gradients:
            self._sequences(forward)
        output_slots = tuple(self._slot_of(y, False) for y in self.outputs)
        backward, seeds, grads = self._backward(forward, output_slots)
        backward = stack_in_place(forward, backward, _stacks_rows)
        backward = unbind_in_place(forward, backward, _unbinds_rows, output_slots)
        input_grads = tuple(grads.get(s) if v.requires_grad else None for s, v in self.inputs)
        forward = [(k, step) for k, step in enumerate(forward) if step is not None]
        self._check_read(forward, output_slots)
        return Plan(self, forward, backward, output_slots, seeds, input_grads)

    def _recurrences(self, forward):
        """Plan each chain of fused cells over a sequence as one loop (:mod:`tensorgrad.jit_recurrence`):
        a Recurrence step where its last cell was; the other cells' places become None."""
        functions = [f for f, _, _ in self.calls]
        recorded_readers = collections.defaultdict(list)
        for k, step in enumerate(forward):
            if step.outputs and self.requires_grad[step.outputs[0]]:
                for s in step.reads():
                    recorded_readers[s].append(k)
        for chain in find_chains(forward, functions, recorded_readers, self.dtype, self.sum_weight_gradients):
            cells = [forward[k] for k in chain]
            for k in chain:
                forward[k] = None
            forward[chain[-1]] = Recurrence(chain[-1], cells, [functions[k] for k in chain])

    def _check_read(self, forward, output_slots):
        """Every array argument must be read by the traced operations: one that is not was
        either not needed, or used outside the tape (its values frozen in the trace)."""
        read = set(output_slots)
        for _, step in forward:
            read.update(step.reads())
        for i, (s, v) in enumerate(self.inputs[:self.arguments]):
            if s not in read:
                raise TraceError(f"jit({self.name}): array argument {i} (shape {v.shape}) is not read by any "
                                 "operation of the trace; if the function uses its values outside the tape "
                                 "(NumPy, .data, Python), a replay would reuse the traced ones. Compute with "
                                 "it as a Variable; pass what decides the function's structure (lengths) "
                                 "as a tuple or list of numbers, part of the signature by value; or do not "
                                 "pass it")

    def _sequences(self, forward):
        """Find the recorded cells whose hidden-side weight several steps share (a sequence): their
        weight gradient is planned as one matmul. Sets ``sequences`` {forward step: (position of h,
        (W slot, bias slot), the step's index in the sequence)} and ``sequence_lengths``
        {(W slot, bias slot): number of steps}."""
        groups = collections.defaultdict(list)
        for k, step in enumerate(forward):
            function = self.calls[k][0]
            if step is not None and step.frame and hasattr(function, "hidden_side_inputs"):
                h, w, b = function.hidden_side_inputs()
                if self.requires_grad[step.inputs[w]]:
                    groups[(step.inputs[w], None if b is None else step.inputs[b])].append((k, h, w, b))
        for key, members in groups.items():
            if len(members) < 2:
                continue
            self.sequence_lengths[key] = len(members)
            for t, (k, h, w, b) in enumerate(members):
                self.sequences[k] = (h, key, t)
                flags = list(forward[k].requires_grad)  # numpy_backward leaves W's and b's gradients out
                flags[w] = False
                if b is not None:
                    flags[b] = False
                forward[k].requires_grad = tuple(flags)

    def _backward(self, forward, output_slots):
        """The backward plan: the eager engine's walk (``autograd``) over the traced calls, planned.

        Gradients are kept per slot (``grads``: slot -> the slot of its gradient so far) and
        added in the engine's order: the seeds first, then the calls in reverse order.
        """
        steps, grads = [], {}
        seeds = []
        products = collections.defaultdict(list)  # (W, b slots): [h slot] of the steps planned so far
        buffers = {}  # (W, b slots): the slot of ∂L/∂b for all steps of the sequence
        for s in output_slots:
            g = self._grad_slot(s) if self.requires_grad[s] else None
            seeds.append(g)
            if g is not None:
                self._accumulate(steps, grads, s, g)
        for k in reversed(range(len(forward))):
            step = forward[k]
            if step is None:  # a cell planned in a Recurrence
                continue
            if type(step) is Recurrence:
                self._recurrence_backward(steps, grads, step)
                continue
            if not step.outputs or not self.requires_grad[step.outputs[0]]:
                continue  # not recorded in eager mode: no gradient flows through it
            gys = [grads.pop(s, None) for s in step.outputs]
            if all(g is None for g in gys):
                continue
            _, inputs, outputs = self.calls[k]
            for i, g in enumerate(gys):  # a multi-output Function's outputs without a gradient get zeros
                if g is None:
                    gys[i] = self._grad_slot(step.outputs[i])
                    steps.append(Zeros(gys[i], outputs[i].shape, self.dtype[step.outputs[i]]))
            wanted = [self.requires_grad[s] for s in step.inputs]
            if step.frame:
                gxs = [self._grad_slot(s) if w and rg else None
                       for s, w, rg in zip(step.inputs, wanted, step.requires_grad, strict=True)]
                hidden, key = None, None
                if k in self.sequences:
                    h, key, t = self.sequences[k]
                    if key not in buffers:  # the sequence's last step, the first planned
                        length = self.sequence_lengths[key]
                        buffers[key] = self._sequence_buffer(steps, step.inputs[0], length)
                    hidden = (buffers[key], t)
                    products[key].append(step.inputs[h])
                steps.append(NumpyBackward(k, tuple(gys), tuple(gxs),
                                           tuple(self.dtype[s] for s in step.inputs), hidden))
                if key is not None and len(products[key]) == self.sequence_lengths[key]:
                    self._weight_gradient(steps, grads, *key, buffers.pop(key), products.pop(key))
            else:
                gxs = self._traced_backward(steps, self.calls[k][0], inputs, outputs, gys, wanted)
            for s, g, w in zip(step.inputs, gxs, wanted, strict=True):
                if g is not None and w:
                    self._accumulate(steps, grads, s, g)
        return steps, seeds, grads

    def _recurrence_backward(self, steps, grads, recurrence):
        """The backward step of a Recurrence: BPTT over its steps from the gradients its states got
        from outside the chain, then those of its inputs added as for any step."""
        grad_outputs = tuple(tuple(grads.pop(s, None) for s in outputs)
                             for outputs in recurrence.step_outputs)
        if all(g is None for outputs in grad_outputs for g in outputs):
            return

        def slot_if_wanted(s):
            return self._grad_slot(s) if s is not None and self.requires_grad[s] else None

        inputs = recurrence.gate_inputs + recurrence.initial + (recurrence.weight, recurrence.bias)
        gxs = [slot_if_wanted(s) for s in inputs]
        T, states = len(recurrence.gate_inputs), len(recurrence.initial)
        a = recurrence.gate_inputs[0]
        steps.append(RecurrenceBackward(recurrence, grad_outputs, tuple(gxs[:T]), tuple(gxs[T:T + states]),
                                        gxs[-2], gxs[-1], self.sum_weight_gradients,
                                        self.shape[a], self.dtype[a]))
        for s, g in zip(inputs, gxs, strict=True):
            if g is not None:
                self._accumulate(steps, grads, s, g)

    def _sequence_buffer(self, steps, a, length):
        """A slot for ∂L/∂b of every step of a sequence (``length`` rows shaped as the input side
        ``a``), and the step that makes it."""
        s = self.size
        self.size += 1
        self.dtype[s] = self.dtype[a]
        self.shape[s] = (length,) + self.shape[a]
        self.requires_grad[s] = False
        steps.append(Empty(s, self.shape[s], self.dtype[s]))
        return s

    def _weight_gradient(self, steps, grads, w, b, grad_b, hs):
        """Σₜ ∂L/∂bₜᵀ hₜ (and Σₜ ∂L/∂bₜ for the bias) over a sequence's steps, once all are planned."""
        gw = self._grad_slot(w)
        gb = None if b is None or not self.requires_grad[b] else self._grad_slot(b)
        steps.append(WeightGradient(grad_b, tuple(hs[::-1]), gw, gb))  # h in the order of the steps
        self._accumulate(steps, grads, w, gw)
        if gb is not None:
            self._accumulate(steps, grads, b, gb)

    def _traced_backward(self, steps, function, inputs, outputs, gys, wanted):
        """Run ``function.backward`` once on stand-in gradients, recording its operations as steps;
        return the slots of the input gradients (None where there is none)."""
        gy_vars = []
        for g, y in zip(gys, outputs, strict=True):
            v = Variable._result(np.zeros(y.shape, y.dtype), False)
            self.keep_alive.append(v)
            self.slot[id(v)] = g
            gy_vars.append(v)
        calls = []
        state.tracer = calls
        try:
            with set_grad_enabled(False):
                gxs = function.backward(*gy_vars)
        finally:
            state.tracer = None
        self.keep_alive.append(calls)
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
        if len(gxs) != len(inputs):
            raise RuntimeError(f"{function.name}.backward returned {len(gxs)} gradients for "
                               f"{len(inputs)} inputs")
        steps.extend(self._step(f, ins, outs, True) for f, ins, outs in calls)
        slots = []
        for x, gx, w in zip(inputs, gxs, wanted, strict=True):
            if gx is None or not w:
                slots.append(None)
                continue
            s = self.slot.get(id(gx))
            if s is None:
                raise TraceError(f"jit({self.name}): {function.name}.backward computed a gradient outside "
                                 "the tape (not with Variable operations), which a replay cannot repeat; "
                                 "give the Function a numpy_backward")
            if gx.dtype != x.dtype:
                cast = self._grad_slot(s, x.dtype)
                steps.append(Cast(s, cast, x.dtype))
                s = cast
            slots.append(s)
        return slots

    def _grad_slot(self, of, dtype=None):
        s = self.size
        self.size += 1
        self.dtype[s] = self.dtype[of] if dtype is None else dtype
        self.shape[s] = self.shape[of]
        self.requires_grad[s] = False
        return s

    def _accumulate(self, steps, grads, s, g):
        """Add the gradient in slot ``g`` to the one of slot ``s`` so far: into a new slot, or in
        place into a sum the plan made itself (never into a gradient a step returned)."""
        previous = grads.get(s)
        if previous is None:
            grads[s] = g
        elif previous in self.sums:
            steps.append(Accumulate(previous, g, previous))
        else:
            total = self._grad_slot(s)
            self.sums.add(total)
            steps.append(Accumulate(previous, g, total))
            grads[s] = total


def _stacks_rows(step):
    """Whether plan step ``step`` stacks its inputs as the rows of a new array (axis 0)."""
    return type(step) is Step and type(step.function) is Stack and step.function.axis == 0


def _unbinds_rows(step):
    """Whether plan step ``step`` unbinds the rows of its input (axis 0)."""
    return type(step) is Step and type(step.function) is Unbind and step.function.axis == 0


def _has_numpy_backward(function):
    return getattr(type(function), "numpy_backward", None) is not None
