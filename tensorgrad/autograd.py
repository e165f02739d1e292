"""Reverse-mode differentiation over the recorded tape.

Every recorded Function carries its recording number ``seq``; an input is always recorded
before the Functions that consume it. So processing the Functions that reach the outputs
in decreasing ``seq`` guarantees that each output gradient is complete (summed over all
its consumers) before it is propagated further. Finding those Functions is an iterative
walk (no recursion limit) and ordering them is one sort: O(N log N) for N nodes.

A gradient that is not recorded may arrive as a :class:`SumOfProducts`: the terms gᵀx of a
weight used at every step of a sequence, summed once, when the gradient is complete.
"""

import operator

import numpy as np

from tensorgrad.function import check_finite
from tensorgrad.modes import detect_anomaly, set_grad_enabled, state
from tensorgrad.steps import blocks
from tensorgrad.variable import Variable, as_variable


class SumOfProducts:
    """The gradient Σᵢ gᵢᵀ xᵢ of a weight W used in several products y = x Wᵀ, kept as its factors.

    A weight applied at every step of a sequence (the hidden side of a recurrent cell) gets
    one term gₜᵀ hₜ per step. Added up as they come, each term is a thin matmul (as many
    rows as the batch) and an addition. Kept as factors, the sum is one matmul over the rows
    of all steps, [g₁; g₂; ...]ᵀ [x₁; x₂; ...], done when the gradient is needed: the
    weight gradient of a hand-written BPTT (of views, not copies, where the steps' arrays
    are slices of one array: see :mod:`tensorgrad.steps`). Without x it is a bias's
    gradient Σᵢ gᵢᵀ 1, the sum of the rows of all gᵢ. Linear returns these when its backward
    is not recorded; the engine merges them and calls :meth:`value` before the gradient is
    used.
    """

    __slots__ = ("lefts", "rights", "shape", "dtype")

    def __init__(self, left, right=None):
        """The term ``left.T @ right`` (or the column sums of ``left``) for 2-d arrays (N, m) and (N, n)."""
        self.lefts = [left]
        self.rights = None if right is None else [right]
        self.shape = left.shape[1:] if right is None else (left.shape[1], right.shape[1])
        self.dtype = left.dtype if right is None or right.dtype == left.dtype else np.result_type(left, right)

    def add(self, other):
        self.lefts += other.lefts
        if self.rights is not None:
            self.rights += other.rights

    def value(self):
        """The sum as a Variable (not recorded): one matmul per block of consecutive steps."""
        total = None
        for left, right in blocks(self.lefts, self.rights):
            term = np.add.reduce(left, axis=0) if right is None else left.T @ right
            if total is None:
                total = term
            else:
                total += term
        return Variable._result(total, False)


def _complete(g):
    """A gradient as a Variable, summing a SumOfProducts."""
    return g.value() if type(g) is SumOfProducts else g


def reachable_functions(outputs):
    """Every recorded Function that some of ``outputs`` depends on, in any order."""
    seen = set()
    stack = [y.creator for y in outputs if y.creator is not None]
    seen.update(stack)
    while stack:
        function = stack.pop()
        for x in function.inputs:
            creator = x.creator
            if creator is not None and creator not in seen:
                seen.add(creator)
                stack.append(creator)
    return seen


def backward(outputs, grad_outputs, *, retain_grad=False, create_graph=False):
    """Accumulate the gradients into ``.grad`` of every leaf that requires one."""
    leaves = _propagate(outputs, grad_outputs, retain_grad, create_graph, None)
    with set_grad_enabled(create_graph):
        for leaf, grad in leaves:
            _store_grad(leaf, _run_hooks(leaf, grad), create_graph)


def grad(outputs, inputs, grad_outputs=None, *, create_graph=False):
    """The gradients of ``outputs`` with respect to ``inputs``, leaving every ``.grad`` alone.

    ``outputs`` and ``inputs`` are Variables or sequences of them; ``grad_outputs`` defaults
    to ones for one-element outputs. Returns a tuple with one gradient (or None, where an
    input does not influence the outputs) per input. Hooks on intermediate Variables run.
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
    leaves = _propagate(outputs, seeds, False, create_graph, wanted)
    with set_grad_enabled(create_graph):
        for leaf, g in leaves:
            if id(leaf) in wanted:
                wanted[id(leaf)] = _run_hooks(leaf, g)
    return tuple(wanted[id(x)] for x in inputs)


def _propagate(outputs, grad_outputs, retain_grad, create_graph, wanted):
    """Run every reached Function's backward; return [(leaf, gradient)] for the leaves.

    With ``wanted`` (a dict keyed by ``id`` of Variables) the complete gradients of those
    Variables are stored there instead of any ``.grad`` being touched.
    """
    grads = {}  # id(Variable) -> gradient so far; every key's Variable is alive meanwhile
    leaves = {}  # id(leaf) -> leaf, for the leaves reached
    for y, g in zip(outputs, grad_outputs, strict=True):  # the seeds, added as in the loop below
        g = g if g.dtype == y.dtype else g.astype(y.dtype)
        key = id(y)
        previous = grads.get(key)
        grads[key] = g if previous is None else _sum(previous, g, create_graph)
        if y.creator is None:
            leaves[key] = y
    functions = sorted(reachable_functions(outputs), key=_seq, reverse=True)
    needed = None if wanted is None else _leading_to(functions, wanted)
    keep_all = retain_grad and wanted is None
    anomaly = state.anomaly
    # The operations inside a backward are not checked as forward outputs: a NaN they make is
    # reported below as the input gradient of the Function whose backward it is.
    with set_grad_enabled(create_graph), detect_anomaly(False):
        for function in functions:
            refs = function.outputs
            if len(refs) == 1:  # the common case, without the lists
                y = refs[0]()
                gy = None if y is None else grads.pop(id(y), None)
                if gy is None:
                    continue
                gys = (_deliver(y, gy, wanted, keep_all, create_graph),)
            else:
                gys = []
                for ref in refs:
                    y = ref()
                    gy = None if y is None else grads.pop(id(y), None)
                    gys.append(None if gy is None else _deliver(y, gy, wanted, keep_all, create_graph))
                if None in gys:  # an output without gradient (or gone) gets zeros
                    if gys.count(None) == len(gys):
                        continue
                    gys = [Variable._result(np.zeros(shape, dtype), False) if gy is None else gy
                           for gy, (shape, dtype) in zip(gys, function.output_specs, strict=True)]
            if needed is not None and function not in needed:
                continue
            gxs = function.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if len(gxs) != len(function.inputs):
                raise RuntimeError(f"{function.name}.backward returned {len(gxs)} gradients for "
                                   f"{len(function.inputs)} inputs")
            if anomaly:
                gxs = [None if g is None else _complete(g) for g in gxs]
                check_finite(function, "input gradient", [None if g is None else g.data for g in gxs])
            for x, gx in zip(function.inputs, gxs):  # of equal length, checked above
                if gx is None or not x.requires_grad:
                    continue
                data = x.data
                if gx.shape != data.shape:
                    raise RuntimeError(f"{function.name}.backward returned a gradient of shape "
                                       f"{gx.shape} for an input of shape {data.shape}")
                if gx.dtype != data.dtype:
                    gx = _complete(gx).astype(data.dtype)
                key = id(x)
                previous = grads.get(key)
                grads[key] = gx if previous is None else _sum(previous, gx, create_graph)
                if x.creator is None:
                    leaves[key] = x
    return [(leaf, _complete(grads[key])) for key, leaf in leaves.items()]


_seq = operator.attrgetter("seq")


def _deliver(y, gy, wanted, keep_all, create_graph):
    """The complete gradient ``gy`` of ``y``: summed, through y's hooks, stored where asked for."""
    if type(gy) is SumOfProducts:
        gy = gy.value()
    if y._hooks:
        gy = _run_hooks(y, gy)
    if wanted is not None:
        if id(y) in wanted:
            wanted[id(y)] = gy
    elif keep_all or y._retains_grad:
        _store_grad(y, gy, create_graph)
    return gy


def _leading_to(functions, wanted):
    """The ``functions`` (sorted by decreasing ``seq``) from which a ``wanted`` Variable is reached.

    Only their backward is needed for the gradients of the wanted Variables; the graph behind
    those Variables is left alone, so ``grad`` costs what the part of the graph it asks about costs.
    """
    needed = set()
    for function in reversed(functions):  # inputs' creators come first
        for x in function.inputs:
            if id(x) in wanted or x.creator in needed:
                needed.add(function)
                break
    return needed


def _sum(a, b, create_graph):
    """The sum of two gradients of one Variable: SumOfProducts merge, else are summed first."""
    if type(a) is SumOfProducts:
        if type(b) is SumOfProducts:
            a.add(b)
            return a
        a = a.value()
    elif type(b) is SumOfProducts:
        b = b.value()
    return _accumulate(a, b, create_graph)


def _store_grad(x, g, create_graph):
    """Accumulate ``g`` into ``x.grad``.

    Without ``create_graph``, ``x.grad`` gets an array of its own: the gradient computed may
    be a read-only broadcast view, or the very array handed to another Variable.
    """
    if x.grad is not None:
        x.grad = _accumulate(x.grad, g, create_graph)
    elif create_graph:
        x.grad = g
    else:
        x.grad = Variable._result(g.data.copy(), False)


def _accumulate(a, b, create_graph):
    if create_graph:
        return a + b
    return Variable._result(a.data + b.data, False)


def _run_hooks(x, g):
    if x._hooks:
        for hook in list(x._hooks.values()):
            result = hook(g)
            if result is not None:
                g = result
    return g
