"""The steps of a ``tg.jit`` plan: what a replay runs, over the slots of an environment of arrays.

A replay's environment ``env`` is a list of arrays, indexed by slot. Every step says which
slots it ``reads()`` and ``writes()`` (from which the plan drops the steps whose results
nobody reads and frees each slot after its last use), and ``run(env, frames)`` computes it:

- :class:`Step`: a traced Function's ``forward``, on a copy of the Function without its
  links into the eager graph, the arrays it holds as constants set to this replay's
  (:func:`bind`);
- :class:`NumpyBackward`: the input gradients from the ``numpy_backward`` of a frame;
- :class:`WeightGradient`: a recurrent weight's gradient over all the steps of a sequence,
  in one matmul;
- :class:`Accumulate`, :class:`Cast`, :class:`Empty`, :class:`Zeros`: the sums, casts and
  new arrays of the gradients, as the eager engine makes them.

A compiled plan (:mod:`tensorgrad.jit_code`) calls a Step's ``forward`` in its line;
NumpyBackward and Accumulate write their own line (``line``) for what ``run`` returned at
the first replay; the other steps' lines call ``run``.
"""

import numpy as np

from tensorgrad.jit_buffers import Buffer
from tensorgrad.jit_code import store


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
    """An array for steps to fill (the ∂L/∂bₜ of a sequence's cells, see WeightGradient), the
    same from call to call while nobody holds it (:class:`~tensorgrad.jit_buffers.Buffer`)."""

    __slots__ = ("to", "shape", "dtype", "buffer")

    def __init__(self, to, shape, dtype):
        self.to, self.shape, self.dtype = to, shape, dtype
        self.buffer = Buffer()

    def reads(self):
        return ()

    def writes(self):
        return (self.to,)

    def run(self, env, frames):
        env[self.to] = self.buffer.take(self.shape, self.dtype)

    def __repr__(self):
        return f"s{self.to} = empty({self.shape}, {self.dtype})"


class Zeros(Empty):
    """The zero gradient of an output of a multi-output Function that got none."""

    __slots__ = ()

    def run(self, env, frames):
        zeros = env[self.to] = self.buffer.take(self.shape, self.dtype)
        zeros.fill(0)

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


new_object = object.__new__
# The eager graph's links, and what a forward saved for its backward: not constants of a step.
TAPE_ATTRIBUTES = ("inputs", "outputs", "output_specs", "seq", "source", "saved")


def _template(function):
    """A copy of a traced Function without its links into the eager graph (which may then be freed)."""
    template = new_object(type(function))
    template.__dict__.update((k, v) for k, v in vars(function).items() if k not in TAPE_ATTRIBUTES)
    return template
