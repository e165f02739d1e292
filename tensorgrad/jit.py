"""Define-and-run: ``tg.jit`` records a function's tape once and replays it.

Eager mode pays Python for every operation: a Function object, a Variable per output, the
bookkeeping of the tape. A training loop runs the same computation at every step with new
numbers, so the tape it records is the same every time. ``tg.jit`` records it once (the
trace) and keeps it as a *plan*: a list of steps (a Function, the slots of its input arrays,
the slots of its output arrays) over an environment of arrays. Replaying the plan calls
each Function's array-level ``forward`` on the new arrays, in the recorded order, and
creates no Function or Variable per operation. The backward pass is planned the same way,
at trace time, and a replay is recorded on the tape as one node whose backward runs it.

This module holds ``tg.jit`` itself: the signature of a call, which picks a plan or sends
the call to a new trace, and the trace, which runs the function eagerly and records every
Function call. The rest has modules of its own:

- :mod:`tensorgrad.jit_planner`: the planner, which turns the recorded calls into forward
  and backward steps;
- :mod:`tensorgrad.jit_steps`: the kinds of steps a plan is made of;
- :mod:`tensorgrad.jit_plan`: the plan, its replay as one node of the tape, and its frames;
- :mod:`tensorgrad.jit_recurrence`: the fused cells of a recurrent layer as one loop;
- :mod:`tensorgrad.jit_buffers`: the arrays a plan allocates itself, kept from call to call;
- :mod:`tensorgrad.jit_code`: the steps compiled to Python source, a line per step.

What the trace freezes (it sees operations, not Python): every decision the function
makes from values (``if loss.item() > 1``), from Python state (a module's ``training``
flag, a config) or from NumPy computations outside the tape is taken once, at trace time,
and replayed as it was taken. A Variable's value turned into Python while tracing
(``item()``, ``float(v)``, ``int(v)``, ``bool(v)``) gives a :class:`TraceWarning` at the
user's line; comparisons (``x > 0``) are Functions, replayed on each call's values. Arrays
the plan reads are its inputs: the array arguments, every call's own values, and the leaf
Variables the function read (read again at every replay, so an optimizer's in-place or
replaced ``.data`` is seen; a Parameter *object* swapped for another is not). Constants
the function builds from Python values stay constants. Hooks (on Variables or a module's
forward hooks) and ``retain_grad`` inside the function do not run in a replay (the
Variables and calls they watch do not exist there). ``tg.grad`` inside the function is
traced like the rest; ``backward()`` inside it, which a replay could not run, is a
:class:`TraceError`.

A replay gives the eager run's values and gradients bit for bit where its NumPy
operations are the eager run's, in the same order. One exception: a backward pass through
several replays at once (``(loss_a + loss_b).backward()`` over two calls) adds each
replay's gradients for a shared weight within the replay first, then across replays,
where eager mode adds every step's in the order recorded; the sums then differ in the
last bits (float32: about 1e-7 relative).
"""

import collections
import contextlib
import copy
import functools
import types
import weakref

import numpy as np

from tensorgrad.jit_planner import Planner
from tensorgrad.modes import TraceError, state
from tensorgrad.variable import Variable

CACHE_SIZE = 8  # plans kept per jitted function (one per signature), least recently used dropped


def jit(fn=None, *, cache_size=CACHE_SIZE, sum_weight_gradients=False):
    """``fn`` as a define-and-run function: traced at its first call per signature, then replayed.

    The signature of a call is: the nesting of its arguments (tuples, NamedTuples, lists,
    dicts), each array argument's shape, dtype and requires_grad (Variables and ndarrays,
    integer ids and targets included), every other argument by value (it must be hashable;
    floats bit for bit, so that -0.0 and 0.0 have plans of their own and a NaN finds its
    plan), and the grad mode. A new signature runs ``fn`` eagerly and records its plan; a
    known one replays the plan, which gives the eager run's values, gradients and dtypes. At
    most ``cache_size`` plans (an int, at least 1) are kept, the least recently used
    dropped; ``.traces`` counts the traces.

    A NamedTuple's class may name the fields that are structure, not data, in ``jit_static``
    (a PackedSequence's batch sizes and indices, which decide the steps a recurrent layer
    runs): they are part of the signature by value (arrays by their bytes), and those of a
    result come back as traced.

    Frozen at trace time (the trace records operations, not Python): branches on values,
    a module's train/eval mode, Python loops' lengths, anything computed with NumPy from
    ``.data`` outside the tape (detected where such a value shares memory with an array of
    the trace, else undetected: keep computations on Variables; ``item()`` and the other
    conversions to Python warn). Random Functions (dropout)
    draw new numbers at every replay. A replay's result is one node on the tape; its
    backward cannot be recorded (``create_graph=True`` is an error: call ``fn.eager``).
    Under ``detect_anomaly`` the function runs eagerly.

    Kept between calls: besides its plans, a jitted function keeps the few arrays its plans
    allocate themselves (a recurrence's rows hₜ and ∂L/∂bₜ: of the size of a layer's output
    and of its input side, per plan), to fill them again at the next call when nothing else
    refers to them any more (:mod:`tensorgrad.jit_buffers`); an array the caller still holds,
    or a replay whose backward has not run yet, is never written into.

    ``sum_weight_gradients=True``: the gradient of a recurrent weight Wₕₕ used by the fused
    cells of every step, Σₜ ∂L/∂bₜᵀ hₜ, is one matmul over all steps instead of one per
    step, as a hand-written BPTT does. Its sum is then rounded in another order than eager
    mode's (float32: relative differences about 1e-7, which an optimizer carries on); the
    default keeps the eager run's order, so that every gradient is equal bit for bit.
    """
    if isinstance(cache_size, bool) or not isinstance(cache_size, int):
        raise TypeError(f"jit: cache_size must be an int, got {type(cache_size).__name__}")
    if cache_size < 1:
        raise ValueError(f"jit: cache_size must be at least 1, got {cache_size}")
    if fn is None:
        return functools.partial(jit, cache_size=cache_size, sum_weight_gradients=sum_weight_gradients)
    return Jit(fn, cache_size, sum_weight_gradients)


class Jit:
    """A jitted function: ``__call__`` traces or replays; ``eager`` is the original function."""

    def __init__(self, fn, cache_size, sum_weight_gradients=False):
        if not callable(fn):
            raise TypeError(f"jit: expected a callable, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.eager = fn
        self.cache_size = cache_size
        self.sum_weight_gradients = sum_weight_gradients
        self.plans = collections.OrderedDict()  # signature -> Plan, least recently used first
        self.traces = 0
        self.instance_traces = weakref.WeakKeyDictionary()  # a jitted method's: instance -> its traces

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
        return self if instance is None else BoundJit(self, instance)

    @property
    def plan(self):
        """The most recently used plan (for drawing and inspection), or None before the first call."""
        return next(reversed(self.plans.values()), None)


class BoundJit:
    """A jitted method of one instance (``model.loss``): its ``Jit`` called with the instance first.

    The instance is an argument by value, so the plans of this instance are those of the
    method's ``Jit`` whose first argument it is: ``plans``, ``plan`` and ``traces`` are this
    instance's (the class attribute's, ``type(model).loss``, are all instances'); ``eager``
    is the original method bound to the instance.
    """

    def __init__(self, jit, instance):
        functools.update_wrapper(self, jit.eager, updated=())
        self.__func__, self.__self__ = jit, instance
        self.eager = types.MethodType(jit.eager, instance)

    def __call__(self, *args, **kwargs):
        jit = self.__func__
        traces = jit.traces
        result = jit(self.__self__, *args, **kwargs)
        if jit.traces > traces:
            with contextlib.suppress(TypeError):  # an instance without weak references is not counted
                jit.instance_traces[self.__self__] = jit.instance_traces.get(self.__self__, 0) + 1
        return result

    @property
    def plans(self):
        """This instance's plans (signature -> Plan), least recently used first."""
        instance = flatten_arguments(self.__self__)[1]
        return collections.OrderedDict((key, plan) for key, plan in self.__func__.plans.items()
                                       if _first_argument(key) == instance)

    plan = Jit.plan  # the most recently used of this instance's plans

    @property
    def traces(self):
        """How many times a call through this instance (``model.loss(x)``) traced the method."""
        try:
            return self.__func__.instance_traces.get(self.__self__, 0)
        except TypeError:
            owner = type(self.__self__).__name__
            raise TypeError(f"jit: the traces of {self.__name__} are counted per instance through a weak "
                            f"reference, which a {owner} does not allow (__slots__ without __weakref__); "
                            f"{owner}.{self.__name__}.traces counts those of all instances") from None


def _first_argument(key):
    """The signature of the first argument in the key of a plan (a jitted method's instance)."""
    signature, _ = key
    _, (args, _) = signature
    _, items = args
    return items[0] if items else None


# ----------------------------------------------------------------------------- signatures
def flatten_arguments(value):
    """(the arrays in ``value``, in order; a hashable signature of everything else).

    Arrays are Variables and ndarrays; tuples, lists and dicts are walked (a NamedTuple's
    static fields, see :func:`jit`, are values); any other value is part of the signature
    by value: floats (and complex numbers, Python's or NumPy's) by their bits, since
    0.0 == -0.0 divide apart and a NaN equals nothing, every other value with ==. An array
    passed twice is marked as such (a plan traced with f(x, x) must not serve f(x, y)).
    """
    arrays, first_index = [], {}

    def walk(v):
        if isinstance(v, Variable):
            return ("V", v.data.shape, v.data.dtype.str, v.requires_grad, _index(v))
        if isinstance(v, np.ndarray):
            return ("A", v.shape, v.dtype.str, _index(v))
        if isinstance(v, (tuple, list)):
            static = _static_items(v)
            return (type(v), tuple(_by_value(x) if i in static else walk(x) for i, x in enumerate(v)))
        if isinstance(v, dict):
            return ("dict", tuple((k, walk(v[k])) for k in sorted(v, key=repr)))
        try:
            hash(v)
        except TypeError:
            raise TypeError(f"jit: an argument of type {type(v).__name__} is neither an array nor "
                            "hashable; the signature of a call holds non-array arguments by value") from None
        if isinstance(v, (float, complex, np.inexact)):  # -0.0 == 0.0, nan != nan: by bits instead
            return ("C", type(v), np.asarray(v).tobytes())
        return ("C", type(v), v)

    def _index(v):
        previous = first_index.setdefault(id(v), len(arrays))
        if previous == len(arrays):
            arrays.append(v)
        return previous

    return arrays, walk(value)


def _static_items(value):
    """The positions in tuple ``value`` of the fields its NamedTuple class names in ``jit_static``."""
    names = getattr(type(value), "jit_static", ())
    return {i for i, name in enumerate(getattr(value, "_fields", ())) if name in names}


def _by_value(item):
    """A static field in a signature: None, or its array's shape, dtype and bytes."""
    if item is None:
        return None
    array = np.asarray(item)
    return (array.shape, array.dtype.str, array.tobytes())


def _rebuilt(kind, items):
    """A tuple or list of type ``kind`` holding ``items`` (a NamedTuple takes them as its fields)."""
    return kind(*items) if hasattr(kind, "_fields") else kind(items)


def _flatten_outputs(result):
    """(the Variables of ``result``, a rebuild function): ``fn`` returns Variables, nested in
    tuples, NamedTuples and lists, or None. A NamedTuple's static fields are kept as traced
    (each replay returns a copy of them)."""
    outputs = []

    def walk(v):
        """The function that rebuilds ``v`` from the replay's output Variables."""
        if isinstance(v, Variable):
            outputs.append(v)
            k = len(outputs) - 1
            return lambda values: values[k]
        if isinstance(v, (tuple, list)):
            kind, static = type(v), _static_items(v)
            parts = [_kept(x) if i in static else walk(x) for i, x in enumerate(v)]
            return lambda values: _rebuilt(kind, [part(values) for part in parts])
        if v is None:
            return lambda values: None
        raise TraceError(f"jit: the function returned a {type(v).__name__}; a traced function returns "
                         "Variables (in tuples or lists), since any other value would be frozen")

    rebuild = walk(result)
    if not outputs and isinstance(result, (tuple, list)):
        raise TraceError(f"jit: the function returned {result!r}, no Variable in it; a replay would return "
                         "that structure as traced (its length may depend on values), so return Variables")
    return outputs, rebuild


def _kept(item):
    """The rebuild of a static field of a result: a copy of its traced value."""
    traced = copy.copy(item)
    return lambda values: copy.copy(traced)


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
    """``value`` with every ndarray in it (in tuples, lists, dicts; not a NamedTuple's static
    fields) wrapped as a Variable without gradient."""
    if isinstance(value, np.ndarray):
        return Variable._result(value, False)
    if isinstance(value, (tuple, list)):
        static = _static_items(value)
        return _rebuilt(type(value), [v if i in static else _as_variables(v) for i, v in enumerate(value)])
    if isinstance(value, dict):
        return {k: _as_variables(v) for k, v in value.items()}
    return value
