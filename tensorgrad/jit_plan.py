"""A ``tg.jit`` plan: the steps of a traced function, replayed on the arrays of new calls.

A :class:`Plan` holds the forward and backward steps the planner made
(:mod:`tensorgrad.jit_planner`), the slots of the replay's inputs and outputs, and the
Variables it reads from outside at every replay. Its forward steps run over a new
environment of arrays at every replay; a Function with ``numpy_backward`` runs there on a
copy of its own, a frame (:func:`_run_frame`).

A replay is recorded on the tape as one node, whose backward runs the backward plan and
hands gradients to the plan's inputs: the array arguments that require them and the leaf
Variables the function read (a model's parameters). That backward runs once per replay: it
frees what the forward kept as it goes (as PyTorch's backward does without ``retain_graph``),
so a second backward through the same replay is a clear error, where eager mode's tape,
which keeps its arrays, allows one.

From the second replay on, the steps run as one compiled Python function, a line of
source per step (:mod:`tensorgrad.jit_code`), without the loop of an interpreter.
"""

import threading

import numpy as np

from tensorgrad.function import Function
from tensorgrad.jit_code import Line, assignment, compile_lines, raise_named, store
from tensorgrad.jit_recurrence import Recurrence
from tensorgrad.jit_steps import Step, bind, new_object
from tensorgrad.modes import set_grad_enabled
from tensorgrad.variable import Variable


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
        self.reach = {}  # which outputs got a gradient -> the gradient slots reached (see _reached)
        self.lock = threading.Lock()  # one replay at a time runs the steps: they share the templates
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
        record = self.records  # the plan is used in the grad mode it was traced in (see Jit)
        if not self.output_slots:
            self.run_forward([x.data for x in inputs], False)
            return self.rebuild([])
        with set_grad_enabled(record):  # recorded as the trace was, even if the function enabled it inside
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
        with self.lock:
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
                try:
                    kinds.append(_run_step(step, k, env, frames))
                except Exception as error:
                    raise_named(error, step.function.name)
                for s in frees:
                    env[s] = None
            self.kinds[record] = kinds
            return env, frames

    def _forward_lines(self, record):
        lines = []
        for (k, step, frees), kind in zip(self.programs[record], self.kinds[record], strict=True):
            op = step.function.name
            if step.frame:
                lines.append(Line(None, (), (), None, frees, _frame_source(k, step, kind, record),
                                  {"function": step.function, "forward": type(step.function).forward,
                                   "bindings": step.bindings}, op))
                continue
            if step.bindings:
                lines.append(Line(None, (), (), None, (), "bind(function{n}, bindings{n}, env)",
                                  {"function": step.function, "bindings": step.bindings}))
            if type(step) is Recurrence:
                lines.append(Line(None, (), (), None, frees, "step{n}.run(env, frames)", {"step": step}, op))
            else:
                lines.append(Line(step.function.forward, step.inputs, step.outputs, kind, frees, op=op))
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
        with self.lock:
            for s, g, y in zip(self.seeds, grad_outputs, self.output_slots, strict=True):
                if s is not None:
                    env[s] = np.zeros(self.shapes[y], self.dtypes[y]) if g is None else g
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
            reached = self._reached(tuple(g is not None for g in grad_outputs))
            return tuple(env[s] if s in reached else None for s in self.input_grads)

    def _reached(self, given):
        """The gradient slots that the seeds of the outputs flagged in ``given`` reach through the
        backward steps (cached per pattern: the other outputs got no gradient)."""
        reached = self.reach.get(given)
        if reached is None:
            reached = {s for s, flag in zip(self.seeds, given, strict=True) if flag and s is not None}
            for step in self.backward:
                if reached.intersection(step.reads()):
                    reached.update(step.writes())
            self.reach[given] = reached
        return reached

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


def _run_frame(step, k, env, frames):
    """Run a Function with ``numpy_backward`` on a copy of its own (its frame): what its forward
    saves belongs to this replay, and is dropped with the frame unless the replay is recorded
    (``frames`` not None), which keeps the frame as ``frames[k]``, with the arrays its
    numpy_backward reads as ``inputs`` and ``outputs``. Returns what the forward returned (its kind)."""
    template = step.function
    frame = new_object(type(template))
    frame.__dict__.update(template.__dict__)
    if step.bindings:
        bind(frame, step.bindings, env)
    arrays = [env[s] for s in step.inputs]
    kind = store(env, step.outputs, frame.forward(*arrays))
    if frames is not None:
        frame.inputs = tuple(map(_Held, arrays, step.requires_grad))
        frame.outputs = tuple(_Held(env[s], True) for s in step.outputs)
        frames[k] = frame
    return kind


def _run_step(step, k, env, frames):
    """Run forward step ``step`` (number ``k``) of a first replay; what it returned (its kind)."""
    if step.frame:
        return _run_frame(step, k, env, frames)
    if step.bindings:
        bind(step.function, step.bindings, env)
    if type(step) is Recurrence:
        return step.run(env, frames)
    return store(env, step.outputs, step.function.forward(*[env[s] for s in step.inputs]))


def _frame_source(k, step, kind, record):
    """``_run_frame`` as lines of the compiled plan, for a forward that returns ``kind``, recorded
    (the frame kept for backward) or not."""
    ins = [f"env[{s}]" for s in step.inputs]
    lines = ["frame = new(type(function{n}))", "frame.__dict__.update(function{n}.__dict__)"]
    if step.bindings:
        lines.append("bind(frame, bindings{n}, env)")
    lines.append(assignment(step.outputs, kind, f"forward{{n}}(frame, {', '.join(ins)})"))
    if record:
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


_SHARED = {"bind": bind, "new": new_object, "Held": _Held}  # names the compiled plans use


class _Replayed(Function):
    """One replay of a plan, recorded on the tape as one node: the function's inputs to its outputs.

    Its outputs that got no gradient in a backward pass come as None, so that the plan can give
    None, as eager mode does, to the inputs no gradient reaches (not zeros: an optimizer skips
    a parameter whose gradient is None, but weight decay moves one whose gradient is zero)."""

    materialize_grads = False

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
