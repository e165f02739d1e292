"""Reverse-mode differentiation over the recorded tape.

Every recorded Function carries its recording number ``seq``; an input is always recorded
before the Functions that consume it. So processing the Functions that reach the outputs
in decreasing ``seq`` guarantees that each output gradient is complete (summed over all
its consumers) before it is propagated further. Finding those Functions is an iterative
walk (no recursion limit) and ordering them is one sort: O(N log N) for N nodes.

The backward pass, in the order of the code below:

1. :func:`backward_order`: the Functions to run, latest recorded first;
2. :func:`_output_gradients`: a Function's complete output gradients, through the hooks;
3. :func:`_input_gradients`: its backward (or array-level ``numpy_backward``, see
   :class:`~tensorgrad.Function`), checked;
4. :func:`_accumulate`: each input gradient added to what its input has got so far.
"""

import operator

import numpy as np

from tensorgrad.function import check_finite
from tensorgrad.modes import TraceError, detect_anomaly, set_grad_enabled, state
from tensorgrad.variable import Variable, as_variable

_seq = operator.attrgetter("seq")


def reachable_functions(outputs, after=-1):
    """Every recorded Function that some of ``outputs`` depends on, in any order; only those
    recorded after the one numbered ``after``, when it is given."""
    seen = set()
    stack = [y.creator for y in outputs if y.creator is not None and y.creator.seq > after]
    seen.update(stack)
    while stack:
        function = stack.pop()
        for x in function.inputs:
            creator = x.creator
            if creator is not None and creator not in seen and creator.seq > after:
                seen.add(creator)
                stack.append(creator)
    return seen


def backward_order(outputs, after=-1):
    """The Functions behind ``outputs`` (recorded after ``after``), latest recorded first:
    the order in which the backward pass runs them."""
    return sorted(reachable_functions(outputs, after), key=_seq, reverse=True)


def backward(outputs, grad_outputs, *, retain_grad=False, create_graph=False):
    """Accumulate the gradients into ``.grad`` of every leaf that requires one."""
    if state.tracer is not None:
        raise TraceError("backward: called inside a function that tg.jit is tracing; a replay runs the "
                         "recorded Functions only, so it would not accumulate .grad (nor run an "
                         "optimizer step after it). Return the loss and call backward on the result")
    def complete(y, g):  # the whole gradient of an intermediate Variable y
        if retain_grad or y._retains_grad:
            _store_grad(y, g, create_graph)

    grads = _back_propagate(backward_order(outputs), _seeds(outputs, grad_outputs), create_graph, complete)
    with set_grad_enabled(create_graph):
        for x, g, _ in grads.values():  # what is left: the leaves' gradients
            _store_grad(x, _run_hooks(x, g), create_graph)


def grad(outputs, inputs, grad_outputs=None, *, create_graph=False):
    """The gradients of ``outputs`` with respect to ``inputs``, leaving every ``.grad`` alone.

    ``outputs`` and ``inputs`` are Variables or sequences of them; ``grad_outputs`` defaults
    to ones for one-element outputs. Returns a tuple with one gradient (or None, where an
    input does not influence the outputs) per input. Hooks on intermediate Variables run.

    Only the part of the graph between the outputs and the inputs is walked and run: no
    Function recorded before the inputs were computed can depend on them.
    """
    outputs = [outputs] if isinstance(outputs, Variable) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Variable) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Variable | np.ndarray):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    seeds = []
    for y, g in zip(outputs, grad_outputs, strict=True):
        if not y.requires_grad:
            raise RuntimeError(f"grad: an output of shape {y.shape} does not require a gradient")
        if g is None:
            if y.size != 1:
                raise RuntimeError(f"grad: output of shape {y.shape} is not a scalar; pass "
                                   "grad_outputs")
            g = np.ones_like(y.data)
        g = as_variable(g, y)
        if g.shape != y.shape:
            raise ValueError(f"grad: grad_output of shape {g.shape} for an output of shape {y.shape}")
        seeds.append(g)

    wanted = {id(x): None for x in inputs}

    def complete(y, g):
        if id(y) in wanted:
            wanted[id(y)] = g

    # A leaf among the inputs may be used anywhere; else nothing recorded before the earliest
    # input's creator can depend on an input.
    after = -1 if any(x.creator is None for x in inputs) else min(x.creator.seq for x in inputs)
    functions = _leading_to(backward_order(outputs, after), wanted)
    grads = _back_propagate(functions, _seeds(outputs, seeds), create_graph, complete)
    with set_grad_enabled(create_graph):
        for key, (x, g, _) in grads.items():  # inputs whose creator did not need to run
            if key in wanted:
                wanted[key] = _run_hooks(x, g)
    return tuple(wanted[id(x)] for x in inputs)


def _seeds(outputs, grad_outputs):
    """The gradients (see :func:`_back_propagate`) of the outputs, in their dtype, summed where
    an output repeats."""
    grads = {}
    for y, g in zip(outputs, grad_outputs, strict=True):
        _accumulate(grads, y, g if g.dtype == y.dtype else g.astype(y.dtype), False)
    return grads


def _leading_to(functions, wanted):
    """The ``functions`` (sorted by decreasing ``seq``) from which a ``wanted`` Variable is
    reached: only their backward is needed for the gradients of the wanted Variables."""
    needed = set()
    for function in reversed(functions):  # inputs' creators come first
        for x in function.inputs:
            if id(x) in wanted or x.creator in needed:
                needed.add(function)
                break
    return [f for f in functions if f in needed]


def _back_propagate(functions, grads, create_graph, complete):
    """Run the backward of ``functions`` (in backward order) from the gradients ``grads``.

    ``grads`` maps id(Variable) to (Variable, gradient so far, whether that gradient is a
    sum made by :func:`_accumulate`). A Variable's entry is taken out when its creator runs,
    and ``complete(y, gradient)`` is told its whole gradient; the entries left at the end are
    those of Variables whose creator did not run (the leaves).
    """
    anomaly = state.anomaly
    # The operations inside a backward are not checked as forward outputs: a NaN they make is
    # reported as the input gradient of the Function whose backward it is.
    with set_grad_enabled(create_graph), detect_anomaly(False):
        for function in functions:
            gys = _output_gradients(function, grads, complete)
            if gys is None:
                continue
            gxs = _input_gradients(function, gys, create_graph)
            if anomaly:
                check_finite(function, "input gradient", [None if g is None else g.data for g in gxs])
            for x, gx in zip(function.inputs, gxs):  # of equal length, checked
                if gx is not None and x.requires_grad:
                    _accumulate(grads, x, gx, create_graph)
    return grads


def _output_gradients(function, grads, complete):
    """The complete gradient of each output of ``function``, through its hooks, or None if
    no output has one. An output without a gradient (or gone) gets zeros, or None if the
    Function does not ``materialize_grads``."""
    gys = []
    for ref in function.outputs:
        y = ref()
        entry = None if y is None else grads.pop(id(y), None)
        if entry is None:
            gys.append(None)
            continue
        gy = _run_hooks(y, entry[1])
        complete(y, gy)
        gys.append(gy)
    if len(gys) == 1:
        return None if gys[0] is None else gys
    if all(gy is None for gy in gys):
        return None
    if not function.materialize_grads:
        return gys
    return [Variable._result(np.zeros(shape, dtype), False) if gy is None else gy
            for gy, (shape, dtype) in zip(gys, function.output_specs, strict=True)]


def _input_gradients(function, gys, create_graph):
    """One gradient Variable (or None) per input of ``function``, in the inputs' dtypes.

    Unrecorded, a Function with an array-level ``numpy_backward`` is given the arrays, except
    inside a ``tg.jit`` trace, which must see every operation (``tg.grad`` in a traced function).
    """
    arrays_only = not create_graph and state.tracer is None
    numpy_backward = getattr(function, "numpy_backward", None) if arrays_only else None
    if numpy_backward is not None:
        arrays = numpy_backward(*[None if g is None else g.data for g in gys])
        arrays = arrays if isinstance(arrays, tuple) else (arrays,)
        gxs = tuple(None if a is None else Variable._result(a, False) for a in arrays)
    else:
        gxs = function.backward(*gys)
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
    if len(gxs) != len(function.inputs):
        raise RuntimeError(f"{function.name}.backward returned {len(gxs)} gradients for "
                           f"{len(function.inputs)} inputs")
    checked = []
    for x, gx in zip(function.inputs, gxs):
        if gx is not None:
            if gx.shape != x.data.shape:
                raise RuntimeError(f"{function.name}.backward returned a gradient of shape "
                                   f"{gx.shape} for an input of shape {x.data.shape}")
            if gx.dtype != x.data.dtype:
                gx = gx.astype(x.data.dtype)
        checked.append(gx)
    return checked


def _accumulate(grads, x, g, create_graph):
    """Add the gradient ``g`` of ``x`` to the one it has so far in ``grads``.

    Unrecorded, the first sum is a new array, which the later terms are added to in place;
    a gradient as a backward returned it is never written to (it may be shared, or a view).
    """
    key = id(x)
    entry = grads.get(key)
    if entry is None:
        grads[key] = (x, g, False)
    elif create_graph:
        grads[key] = (x, entry[1] + g, False)
    elif entry[2]:  # a sum made here
        entry[1].data += g.data
    else:
        grads[key] = (x, Variable._result(entry[1].data + g.data, False), True)


def _store_grad(x, g, create_graph):
    """Accumulate ``g`` into ``x.grad``.

    Without ``create_graph``, ``x.grad`` gets an array of its own: the gradient computed may
    be a read-only broadcast view, or the very array handed to another Variable.
    """
    if x.grad is not None:
        x.grad = x.grad + g if create_graph else Variable._result(x.grad.data + g.data, False)
    elif create_graph:
        x.grad = g
    else:
        x.grad = Variable._result(g.data.copy(), False)


def _run_hooks(x, g):
    if x._hooks:
        for hook in list(x._hooks.values()):
            result = hook(g)
            if result is not None:
                result = as_variable(result, g)
                if result.shape != g.shape:
                    raise RuntimeError(f"register_hook: the hook {getattr(hook, '__qualname__', hook)!r} "
                                       f"returned a gradient of shape {result.shape} for a Variable of "
                                       f"shape {g.shape}; a hook may change a gradient's values, not its "
                                       "shape")
                g = result
    return g
