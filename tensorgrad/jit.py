"""Define-and-run: ``tg.jit`` records a function's tape once and replays it.

Eager mode pays Python for every operation: a Function object, a Variable per output, the
bookkeeping of the tape. A training loop runs the same computation at every step with new
numbers, so the tape it records is the same every time. ``tg.jit`` records it once (the
trace) and keeps it as a *plan*: a list of steps (a Function, the slots of its input arrays,
the slots of its output arrays) over an environment of arrays. Replaying the plan calls
each Function's array-level ``forward`` on the new arrays, in the recorded order, and
creates no Function or Variable per operation. The backward pass is planned the same way,
at trace time:

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

From the second replay on, the steps run as one compiled Python function, a line of
source per step (:mod:`tensorgrad.jit_code`), without the loop of an interpreter.

A replay is recorded on the tape as one node, whose backward runs the backward plan and
hands gradients to the plan's inputs: the array arguments that require them and the leaf
Variables the function read (a model's parameters). That backward runs once per replay: it
frees what the forward kept as it goes (as PyTorch's backward does without ``retain_graph``),
so a second backward through the same replay is a clear error, where eager mode's tape,
which keeps its arrays, allows one.

What the trace freezes (it sees operations, not Python): every decision the function
makes from values (``if loss.item() > 1``), from Python state (a module's ``training``
flag, a config) or from NumPy computations outside the tape is taken once, at trace time,
and replayed as it was taken. Arrays the plan reads are its inputs: the array arguments,
every call's own values, and the leaf Variables the function read (read again at every
replay, so an optimizer's in-place or replaced ``.data`` is seen; a Parameter *object*
swapped for another is not). Constants the function builds from Python values stay
constants. Hooks and ``retain_grad`` on Variables made inside the function do not run in
a replay (those Variables do not exist there).

The planner also does what only a view of the whole computation allows: it runs each
recurrence from one loop, drops steps whose results nobody reads (except random ones),
frees each slot after its last use, and (``sum_weight_gradients=True``) computes a
recurrent weight's gradient over all the steps of a sequence in one matmul.
"""

import collections
import functools

import numpy as np

from tensorgrad.function import Function
from tensorgrad.functions.shape import Stack
from tensorgrad.jit_code import Line, assignment, compile_lines, store
from tensorgrad.jit_recurrence import Recurrence, RecurrenceBackward, find_chains, stack_in_place
from tensorgrad.modes import set_grad_enabled, state
from tensorgrad.variable import Variable

CACHE_SIZE = 8  # plans kept per jitted function (one per signature), least recently used dropped


class TraceError(RuntimeError):
    """A function that ``tg.jit`` cannot replay faithfully; the message says what it did."""


def jit(fn=None, *, cache_size=CACHE_SIZE, sum_weight_gradients=False):
    """``fn`` as a define-and-run function: traced at its first call per signature, then replayed.

    The signature of a call is: the nesting of its arguments (tuples, lists, dicts), each
    array argument's shape, dtype and requires_grad (Variables and ndarrays, integer ids and
    targets included), every other argument by value (it must be hashable), and the grad
    mode. A new signature runs ``fn`` eagerly and records its plan; a known one replays the
    plan, which gives the eager run's values, gradients and dtypes. At most ``cache_size``
    plans are kept (least recently used dropped); ``.traces`` counts the traces.

    Frozen at trace time (the trace records operations, not Python): branches on values,
    a module's train/eval mode, Python loops' lengths, anything computed with NumPy from
    ``.data`` outside the tape (detected where such a value shares memory with an array of
    the trace, else undetected: keep computations on Variables). Random Functions (dropout)
    draw new numbers at every replay. A replay's result is one node on the tape; its
    backward cannot be recorded (``create_graph=True`` is an error: call ``fn.eager``).
    Under ``detect_anomaly`` the function runs eagerly.

    ``sum_weight_gradients=True``: the gradient of a recurrent weight Wₕₕ used by the fused
    cells of every step, Σₜ ∂L/∂bₜᵀ hₜ, is one matmul over all steps instead of one per
    step, as a hand-written BPTT does. Its sum is then rounded in another order than eager
    mode's (float32: relative differences about 1e-7, which an optimizer carries on); the
    default keeps the eager run's order, so that every gradient is equal bit for bit.
    """
    if fn is None:
        return functools.partial(jit, cache_size=cache_size, sum_weight_gradients=sum_weight_gradients)
    return Jit(fn, cache_size, sum_weight_gradients)


class Jit:
    """A jitted function: ``__call__`` traces or replays; ``eager`` is the original function."""

    def __init__(self, fn, cache_size, sum_weight_gradients=False):
        if not callable(fn):
            raise TypeError(f"jit: expected a callable, got {type(fn).__name__}")
        if cache_size < 1:
            raise ValueError(f"jit: cache_size must be at least 1, got {cache_size}")
        functools.update_wrapper(self, fn)
        self.eager = fn
        self.cache_size = cache_size
        self.sum_weight_gradients = sum_weight_gradients
        self.plans = collections.OrderedDict()  # signature -> Plan, least recently used first
        self.traces = 0

    def __call__(self, *args, **kwargs):
        if state.anomaly or state.tracer is not None:  # inside another trace: its operations are that trace's
            return self.eager(*args, **kwargs)
        arrays, signature = flatten_arguments((args, kwargs))
        key = (signature, state.grad_enabled)
        plan = self.plans.get(key)
        if plan is not None and plan.still_valid():
            self.plans.move_to_end(key)
            return plan.replay(arrays)
        result, plan = trace(self.eager, args, kwargs, self.sum_weight_gradients)
        self.traces += 1
        self.plans[key] = plan
        self.plans.move_to_end(key)
        while len(self.plans) > self.cache_size:
            self.plans.popitem(last=False)
        return result

    def __get__(self, instance, owner=None):
        """A jitted method: the instance is an argument by value (a plan per instance)."""
        return self if instance is None else functools.partial(self, instance)

    @property
    def plan(self):
        """The most recently used plan (for drawing and inspection), or None before the first call."""
        return next(reversed(self.plans.values()), None)


# ----------------------------------------------------------------------------- signatures
def flatten_arguments(value):
    """(the arrays in ``value``, in order; a hashable signature of everything else).

    Arrays are Variables and ndarrays; tuples, lists and dicts are walked; any other value
    is part of the signature by value. An array passed twice is marked as such (a plan
    traced with f(x, x) must not serve f(x, y)).
    """
    arrays, first_index = [], {}

    def walk(v):
        if isinstance(v, Variable):
            return ("V", v.data.shape, v.data.dtype.str, v.requires_grad, _index(v))
        if isinstance(v, np.ndarray):
            return ("A", v.shape, v.dtype.str, _index(v))
        if isinstance(v, (tuple, list)):
            return (type(v).__name__, tuple(walk(x) for x in v))
        if isinstance(v, dict):
            return ("dict", tuple((k, walk(v[k])) for k in sorted(v, key=repr)))
        try:
            hash(v)
        except TypeError:
            raise TypeError(f"jit: an argument of type {type(v).__name__} is neither an array nor "
                            "hashable; the signature of a call holds non-array arguments by value") from None
        return ("C", type(v), v)

    def _index(v):
        previous = first_index.setdefault(id(v), len(arrays))
        if previous == len(arrays):
            arrays.append(v)
        return previous

    return arrays, walk(value)


def _flatten_outputs(result):
    """(the Variables of ``result``, a rebuild function): ``fn`` returns Variables, nested in
    tuples and lists, or None."""
    outputs = []

    def walk(v):
        if isinstance(v, Variable):
            outputs.append(v)
            return len(outputs) - 1
        if isinstance(v, (tuple, list)):
            return (type(v), tuple(walk(x) for x in v))
        if v is None:
            return None
        raise TraceError(f"jit: the function returned a {type(v).__name__}; a traced function returns "
                         "Variables (in tuples or lists), since any other value would be frozen")

    structure = walk(result)

    def rebuild(values, s=structure):
        if s is None:
            return None
        if isinstance(s, int):
            return values[s]
        kind, items = s
        return kind(rebuild(values, x) for x in items)

    return outputs, rebuild


# ----------------------------------------------------------------------------- the trace
def trace(fn, args, kwargs, sum_weight_gradients=False):
    """Run ``fn`` eagerly, recording every Function call; return (its result, the Plan).

    ndarray arguments reach ``fn`` as Variables needing no gradient, so that what it does
    with them (``targets.reshape(-1)``) is recorded too.
    """
    args, kwargs = _as_variables((args, kwargs))
    arrays, _ = flatten_arguments((args, kwargs))
    calls = []
    state.tracer = calls
    try:
        result = fn(*args, **kwargs)
    finally:
        state.tracer = None
    outputs, rebuild = _flatten_outputs(result)
    planner = Planner(arrays, calls, outputs, rebuild, getattr(fn, "__name__", "fn"))
    return result, planner.plan(sum_weight_gradients)


def _as_variables(value):
    """``value`` with every ndarray in it (in tuples, lists, dicts) wrapped as a Variable without gradient."""
    if isinstance(value, np.ndarray):
        return Variable._result(value, False)
    if isinstance(value, (tuple, list)):
        return type(value)(_as_variables(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_variables(v) for k, v in value.items()}
    return value


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
            if name in _TAPE_ATTRIBUTES:
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
            step.frame = bool(step.outputs) and self.requires_grad[step.outputs[0]] and _has_numpy_backward(
                step.function)
        self.sum_weight_gradients = sum_weight_gradients
        self._recurrences(forward)
        self.sequences, self.sequence_lengths = {}, {}
        if sum_weight_gradients:
            self._sequences(forward)
        output_slots = tuple(self._slot_of(y, False) for y in self.outputs)
        backward, seeds, grads = self._backward(forward, output_slots)
        backward = stack_in_place(forward, backward, _stacks_rows)
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
                                 "it as a Variable, or do not pass it")

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


def _has_numpy_backward(function):
    return getattr(type(function), "numpy_backward", None) is not None


# ----------------------------------------------------------------------------- plan steps
class Step:
    """``outputs = function.forward(*inputs)`` over slots; ``bindings`` set the arrays the Function
    holds as constants from their slots first. ``frame``: the Function has a ``numpy_backward``
    that reads what its forward saved, so each replay runs it on a copy of its own (a frame)."""

    __slots__ = ("function", "inputs", "outputs", "bindings", "frame", "requires_grad")

    def __init__(self, function, inputs, outputs, bindings, requires_grad):
        self.function = _template(function)
        self.inputs, self.outputs, self.bindings = inputs, outputs, bindings
        self.requires_grad = requires_grad  # of each input, as traced
        self.frame = False

    def reads(self):
        return self.inputs + tuple(b[2] for b in self.bindings)

    def writes(self):
        return self.outputs

    def run(self, env, frames=None):
        function = self.function
        if self.bindings:
            bind(function, self.bindings, env)
        ys = function.forward(*[env[s] for s in self.inputs])
        store(env, self.outputs, ys)

    def __repr__(self):
        ins = ", ".join(f"s{s}" for s in self.inputs)
        outs = ", ".join(f"s{s}" for s in self.outputs)
        return f"{outs} = {self.function.name}({ins})"


class NumpyBackward:
    """The input gradients of forward step ``k`` from its frame's ``numpy_backward``."""

    __slots__ = ("k", "grad_outputs", "grad_inputs", "dtypes", "hidden_side")

    def __init__(self, k, grad_outputs, grad_inputs, dtypes, hidden_side=None):
        self.k, self.grad_outputs, self.grad_inputs, self.dtypes = k, grad_outputs, grad_inputs, dtypes
        self.hidden_side = hidden_side  # (slot, t): a sequence's cell writes ∂L/∂b in row t (WeightGradient)

    def reads(self):
        return self.grad_outputs + self._buffer()

    def writes(self):
        return tuple(s for s in self.grad_inputs if s is not None) + self._buffer()

    def _buffer(self):
        return () if self.hidden_side is None else self.hidden_side[:1]

    def run(self, env, frames):
        """Returns whether the gradients came as one array or a tuple, each of its input's dtype
        (or None): then the compiled line stores them as they come (``line``)."""
        frame = frames[self.k]
        if self.hidden_side is not None:
            buffer, t = self.hidden_side
            frame.grad_hidden_side = env[buffer][t]
        gxs = frame.numpy_backward(*[env[s] for s in self.grad_outputs])
        single = not isinstance(gxs, tuple)
        if single:
            gxs = (gxs,)
        as_they_come = True
        for s, g, dtype in zip(self.grad_inputs, gxs, self.dtypes, strict=True):
            if s is not None:
                as_they_come &= g is None or g.dtype == dtype
                env[s] = g if g is None or g.dtype == dtype else g.astype(dtype)
        return ("array" if single else "tuple") if as_they_come else None

    def line(self, kind):
        """The compiled source of this step, for gradients that come as ``kind`` says (see ``run``)."""
        targets = ", ".join("_" if s is None else f"env[{s}]" for s in self.grad_inputs)
        call = f"frames[{self.k}].numpy_backward({', '.join(f'env[{s}]' for s in self.grad_outputs)})"
        source = f"{targets} = {call}" if kind == "array" else f"{targets}, = {call}"
        if self.hidden_side is not None:
            buffer, t = self.hidden_side
            source = f"frames[{self.k}].grad_hidden_side = env[{buffer}][{t}]\n" + source
        return source

    def __repr__(self):
        outs = ", ".join("_" if s is None else f"s{s}" for s in self.grad_inputs)
        return f"{outs} = numpy_backward#{self.k}({', '.join(f's{s}' for s in self.grad_outputs)})"


class WeightGradient:
    """∂L/∂W = Σₜ ∂L/∂bₜᵀ hₜ for a weight W of the products bₜ = hₜ Wᵀ + bias of a sequence's
    steps, as one matmul over the rows of all steps (and ∂L/∂bias = Σₜ Σ_rows ∂L/∂bₜ).
    ``grad_b``: the slot of all ∂L/∂bₜ, written there by the steps' cells; ``hs``: the hₜ."""

    __slots__ = ("grad_b", "hs", "weight", "bias")

    def __init__(self, grad_b, hs, weight, bias):
        self.grad_b, self.hs, self.weight, self.bias = grad_b, hs, weight, bias

    def reads(self):
        return (self.grad_b,) + self.hs

    def writes(self):
        return (self.weight,) if self.bias is None else (self.weight, self.bias)

    def run(self, env, frames):
        grad_b = _rows(env[self.grad_b])
        h = np.concatenate([_rows(env[h]) for h in self.hs])
        env[self.weight] = grad_b.T @ h
        if self.bias is not None:
            env[self.bias] = grad_b.sum(axis=0)

    def __repr__(self):
        return f"s{self.weight} = Σ gradᵀ h over {len(self.hs)} steps of s{self.grad_b}"


def _rows(array):
    return array.reshape(-1, array.shape[-1])


class Accumulate:
    """``total = a + b``: two gradients of one array, added in the eager engine's order; in
    place (``total`` is ``a``) when ``a`` is a sum the plan made itself."""

    __slots__ = ("a", "b", "total")

    def __init__(self, a, b, total):
        self.a, self.b, self.total = a, b, total

    def reads(self):
        return (self.a, self.b)

    def writes(self):
        return (self.total,)

    def run(self, env, frames):
        """Returns "arrays" when both gradients were arrays (not None): then the compiled line adds them."""
        a, b = env[self.a], env[self.b]
        if a is None or b is None:  # a numpy_backward may give None: the sum is the other, as an array
            if not (b is None and self.total == self.a):  # of the plan's own, since it may be added to
                other = b if a is None else a
                env[self.total] = None if other is None else other.copy()
            return None
        if self.total == self.a:
            a += b
        else:
            env[self.total] = a + b
        return "arrays"

    def line(self, kind):
        if self.total == self.a:
            return f"env[{self.a}] += env[{self.b}]"
        return f"env[{self.total}] = env[{self.a}] + env[{self.b}]"

    def __repr__(self):
        return f"s{self.a} += s{self.b}" if self.total == self.a else f"s{self.total} = s{self.a} + s{self.b}"


class Cast:
    """``env[to] = env[a]`` in ``dtype``: a gradient cast to its input's dtype, as the engine does."""

    __slots__ = ("a", "to", "dtype")

    def __init__(self, a, to, dtype):
        self.a, self.to, self.dtype = a, to, dtype

    def reads(self):
        return (self.a,)

    def writes(self):
        return (self.to,)

    def run(self, env, frames):
        env[self.to] = env[self.a].astype(self.dtype)

    def __repr__(self):
        return f"s{self.to} = s{self.a}.astype({self.dtype})"


class Empty:
    """A new array for steps to fill (the ∂L/∂bₜ of a sequence's cells, see WeightGradient)."""

    __slots__ = ("to", "shape", "dtype")

    def __init__(self, to, shape, dtype):
        self.to, self.shape, self.dtype = to, shape, dtype

    def reads(self):
        return ()

    def writes(self):
        return (self.to,)

    def run(self, env, frames):
        env[self.to] = np.empty(self.shape, self.dtype)

    def __repr__(self):
        return f"s{self.to} = empty({self.shape}, {self.dtype})"


class Zeros(Empty):
    """The zero gradient of an output of a multi-output Function that got none."""

    __slots__ = ()

    def run(self, env, frames):
        env[self.to] = np.zeros(self.shape, self.dtype)

    def __repr__(self):
        return f"s{self.to} = zeros({self.shape}, {self.dtype})"


def bind(function, bindings, env):
    """Set the arrays ``function`` holds as constants to this replay's arrays of their slots."""
    for name, index, s in bindings:
        if index is None:
            setattr(function, name, env[s])
        else:
            items = list(getattr(function, name))
            items[index] = env[s]
            setattr(function, name, tuple(items))


# ----------------------------------------------------------------------------- the plan
class Plan:
    """A traced function: forward and backward steps over slots, and what to read at a replay.

    ``forward``: the steps of the recorded (and unrecorded) calls, in order, those nobody
    needs dropped; ``backward``: the steps that compute the input gradients from the
    output gradients (``seeds``). ``inputs``: the replay node's inputs (the array
    arguments, then the Variables from outside read by the function that need a gradient
    or have a history); ``leaves``: Variables read at every replay that need neither.
    """

    def __init__(self, planner, forward, backward, output_slots, seeds, input_grads):
        self.name = planner.name
        self.size = planner.size
        self.rebuild = planner.rebuild
        self.input_slots = tuple(s for s, _ in planner.inputs)
        self.arguments = planner.arguments
        self.externals = [v for s, v in planner.inputs[planner.arguments:]]
        self.leaves = planner.leaves
        self.constants = planner.constants
        self.output_slots = output_slots
        self.output_flags = [(y.requires_grad, y.name) for y in planner.outputs]
        self.shapes, self.dtypes = planner.shape, planner.dtype  # of each slot
        self.seeds, self.input_grads = seeds, input_grads
        read = self.externals + [v for _, v in self.leaves]
        self.checks = [(v, v.shape, v.dtype, v.requires_grad) for v in read]
        self.records = any(g is not None for g in input_grads)
        self.backward = [step for _, step in _live(list(enumerate(backward)), set(g for g in input_grads
                                                                                 if g is not None))]
        read_in_backward = {s for step in self.backward for s in step.reads()}
        self.kept = _live(forward, set(output_slots) | read_in_backward)
        self.forward = [step for _, step in self.kept]
        self.frames = sum(1 for step in self.forward if step.frame)  # Functions copied at each replay
        outputs = set(output_slots)
        self.frees = {True: _frees(self.forward, read_in_backward | outputs),  # recorded: keep for backward
                      False: _frees(self.forward, outputs)}
        self.backward_frees = _frees(self.backward, {g for g in input_grads if g is not None})
        self.programs = {record: [(k, step, frees) for (k, step), frees in zip(self.kept, self.frees[record],
                                                                              strict=True)]
                         for record in (True, False)}
        self.compiled = {}  # True, False (recorded or not), "backward" -> the steps compiled (jit_code)
        self.kinds = {}  # True, False -> what each forward step returned at the first replay
        self.backward_program = [
            (step, step.function.forward if type(step) is Step and not step.bindings else None,
             getattr(step, "inputs", None), getattr(step, "outputs", None), frees)
            for step, frees in zip(self.backward, self.backward_frees, strict=True)]

    def still_valid(self):
        """Whether the Variables read from outside still have the traced shapes, dtypes and requires_grad."""
        return all(v.data.shape == shape and v.data.dtype == dtype and v.requires_grad == rg
                   for v, shape, dtype, rg in self.checks)

    def replay(self, arrays):
        """Run the plan on the arrays of a call; the result as ``fn`` returns it."""
        inputs = [a if isinstance(a, Variable) else Variable._result(a, False) for a in arrays]
        inputs += self.externals
        record = self.records and state.grad_enabled
        if not self.output_slots:
            self.run_forward([x.data for x in inputs], False)
            return self.rebuild([])
        outputs = _Replayed(self, record)(*inputs)
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        for y, (requires_grad, name) in zip(outputs, self.output_flags, strict=True):
            y.requires_grad = requires_grad and record
            y.name = name
        return self.rebuild(outputs)

    def run_forward(self, arrays, record):
        """(the environment after the forward steps, the frames of the Functions with numpy_backward).

        The first replay runs the steps one by one and notes what each returns; the next ones
        run the plan compiled into Python source (:mod:`tensorgrad.jit_code`), compiled before
        the steps of the second one, when none of its arrays are live yet, so that compiling
        adds nothing to a replay's peak memory."""
        run = self.compiled.get(record)
        if run is None and record in self.kinds:
            run = self.compiled[record] = compile_lines(self._forward_lines(record), self.name, _SHARED)
        if record and "backward" in self.kinds and "backward" not in self.compiled:
            self.compiled["backward"] = compile_lines(self._backward_lines(), f"{self.name} (backward)",
                                                      _SHARED)
        env = [None] * self.size
        for s, a in zip(self.input_slots, arrays, strict=True):
            env[s] = a
        for s, v in self.leaves:
            env[s] = v.data
        frames = {} if record else None
        if run is not None:
            return run(env, frames), frames
        kinds = []
        for k, step, frees in self.programs[record]:
            if record and step.frame:
                frames[k], kind = _run_frame(step, env)
                kinds.append(kind)
            else:
                if step.bindings:
                    bind(step.function, step.bindings, env)
                if type(step) is Recurrence:
                    kinds.append(step.run(env, frames))
                else:
                    ys = step.function.forward(*[env[s] for s in step.inputs])
                    kinds.append(store(env, step.outputs, ys))
            for s in frees:
                env[s] = None
        self.kinds[record] = kinds
        return env, frames

    def _forward_lines(self, record):
        lines = []
        for (k, step, frees), kind in zip(self.programs[record], self.kinds[record], strict=True):
            if record and step.frame:
                lines.append(Line(None, (), (), None, frees, _frame_source(k, step, kind),
                                  {"function": step.function, "forward": type(step.function).forward,
                                   "bindings": step.bindings}))
                continue
            if step.bindings:
                lines.append(Line(None, (), (), None, (), "bind(function{n}, bindings{n}, env)",
                                  {"function": step.function, "bindings": step.bindings}))
            if type(step) is Recurrence:
                lines.append(Line(None, (), (), None, frees, "step{n}.run(env, frames)", {"step": step}))
            else:
                lines.append(Line(step.function.forward, step.inputs, step.outputs, kind, frees))
        return lines

    def _backward_lines(self):
        lines = []
        kinds = self.kinds["backward"]
        for (step, forward, inputs, outputs, frees), kind in zip(self.backward_program, kinds, strict=True):
            if forward is not None:
                lines.append(Line(forward, inputs, outputs, kind, frees))
            elif kind is not None:  # a step that writes its own line, for what it gave at the first replay
                lines.append(Line(None, (), (), None, frees, step.line(kind)))
            else:
                lines.append(Line(None, (), (), None, frees, "step{n}.run(env, frames)", {"step": step}))
        return lines

    def run_backward(self, env, frames, grad_outputs):
        """The gradients of the replay node's inputs (None where none) from its outputs' gradients."""
        for s, g in zip(self.seeds, grad_outputs, strict=True):
            if s is not None:
                env[s] = g
        for s, a in self.constants:
            env[s] = a
        run = self.compiled.get("backward")
        if run is not None:
            run(env, frames)
        else:
            kinds = []
            for step, forward, inputs, outputs, frees in self.backward_program:
                if forward is None:
                    kinds.append(step.run(env, frames))
                else:
                    kinds.append(store(env, outputs, forward(*[env[s] for s in inputs])))
                for s in frees:
                    env[s] = None
            self.kinds["backward"] = kinds
        return tuple(None if s is None else env[s] for s in self.input_grads)

    @property
    def source(self):
        """The compiled Python source of the forward (recorded, else unrecorded) and backward steps,
        as far as compiled (from the second replay on); "" before."""
        parts = [self.compiled.get(record) for record in (True, False, "backward")]
        return "".join(run.source for run in parts if run is not None)

    def __repr__(self):
        lines = [f"plan of {self.name}: {len(self.forward)} forward, {len(self.backward)} backward steps"]
        lines += [f"  {step!r}" for step in self.forward]
        lines.append("  -- backward")
        lines += [f"  {step!r}" for step in self.backward]
        return "\n".join(lines)


def _frees(steps, keep):
    """For each step, the slots to free once it has run: those it is the last to read or write,
    except the slots in ``keep``."""
    last = {}
    for i, step in enumerate(steps):
        for s in step.reads() + step.writes():
            last[s] = i
    frees = [[] for _ in steps]
    for s, i in last.items():
        if s not in keep:
            frees[i].append(s)
    return [tuple(f) for f in frees]


def _live(steps, live):
    """The (k, step) of ``steps`` whose results reach the slots ``live`` (or that draw random numbers):
    dead work dropped. A NumpyBackward step stays with its forward step, which makes its frame."""
    kept = []
    for k, step in reversed(steps):
        function = getattr(step, "function", None)
        if live.intersection(step.writes()) or (function is not None and getattr(function, "random", False)):
            live.update(step.reads())
            kept.append((k, step))
    kept.reverse()
    return kept


_new_object = object.__new__
# The eager graph's links, and what a forward saved for its backward: not constants of a step.
_TAPE_ATTRIBUTES = ("inputs", "outputs", "output_specs", "seq", "source", "saved")


def _template(function):
    """A copy of a traced Function without its links into the eager graph (which may then be freed)."""
    template = _new_object(type(function))
    template.__dict__.update((k, v) for k, v in vars(function).items() if k not in _TAPE_ATTRIBUTES)
    return template


def _run_frame(step, env):
    """Run a Function with ``numpy_backward`` on a copy of its own (its frame): what its forward
    saves, and the arrays its numpy_backward reads as ``inputs`` and ``outputs``, belong to
    this replay. Returns the frame."""
    template = step.function
    frame = _new_object(type(template))
    frame.__dict__.update(template.__dict__)
    if step.bindings:
        bind(frame, step.bindings, env)
    arrays = [env[s] for s in step.inputs]
    kind = store(env, step.outputs, frame.forward(*arrays))
    frame.inputs = tuple(map(_Held, arrays, step.requires_grad))
    frame.outputs = tuple(_Held(env[s], True) for s in step.outputs)
    return frame, kind


def _frame_source(k, step, kind):
    """``_run_frame`` as lines of the compiled plan, for a forward that returns ``kind``."""
    ins = [f"env[{s}]" for s in step.inputs]
    lines = ["frame = new(type(function{n}))", "frame.__dict__.update(function{n}.__dict__)"]
    if step.bindings:
        lines.append("bind(frame, bindings{n}, env)")
    lines.append(assignment(step.outputs, kind, f"forward{{n}}(frame, {', '.join(ins)})"))
    held = "".join(f"Held({a}, {rg}), " for a, rg in zip(ins, step.requires_grad, strict=True))
    lines.append(f"frame.inputs = ({held})")
    lines.append(f"frame.outputs = ({''.join(f'Held(env[{s}], True), ' for s in step.outputs)})")
    lines.append(f"frames[{k}] = frame")
    return "\n".join(lines)


class _Held:
    """An input or output of a frame as its ``numpy_backward`` reads it: ``data`` and
    ``requires_grad``, as on a Variable, without the rest of one (a frame is made per cell and
    replay). Called, it returns itself, as the weak reference to an output does."""

    __slots__ = ("data", "requires_grad")

    def __init__(self, data, requires_grad):
        self.data, self.requires_grad = data, requires_grad

    def __call__(self):
        return self

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim


_SHARED = {"bind": bind, "new": _new_object, "Held": _Held}  # names the compiled plans use


class _Replayed(Function):
    """One replay of a plan, recorded on the tape as one node: the function's inputs to its outputs."""

    def __init__(self, plan, record):
        self.plan, self.record = plan, record
        self.op = f"jit({plan.name})"

    def forward(self, *arrays):
        self.env, self.frames = self.plan.run_forward(arrays, self.record)
        outputs = tuple(self.env[s] for s in self.plan.output_slots)
        if not self.record:
            self.env = None
        return outputs[0] if len(outputs) == 1 else outputs

    def numpy_backward(self, *grad_outputs):
        """The backward plan, once: it frees each array the forward kept after its last use, so a
        second backward through this node (eager mode's tape keeps its arrays) is an error."""
        if self.env is None:
            raise RuntimeError(f"{self.op}: backward through a replayed function a second time; its "
                               "backward plan frees the arrays the forward kept as it runs. Call the "
                               "function again for a new backward, or call fn.eager, whose tape keeps them")
        env, frames, self.env, self.frames = self.env, self.frames, None, None
        return self.plan.run_backward(env, frames, grad_outputs)

    def backward(self, *grad_outputs):
        """Called by the engine only when the backward pass is recorded, which a plan cannot do."""
        raise RuntimeError(f"{self.op}: create_graph=True through a replayed function; its backward "
                           "runs the recorded NumPy steps, which cannot be recorded. Call the function "
                           "eagerly (fn.eager) for higher derivatives")
