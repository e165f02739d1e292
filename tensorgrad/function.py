"""The Function: one differentiable operation, computed at once and recorded on the tape."""

import itertools
import linecache
import operator
import weakref

import numpy as np

from tensorgrad.modes import state, user_frame
from tensorgrad.variable import Variable, as_variable

_sequence = itertools.count()  # recording order: every input is recorded before its consumers
# For map(): no Python-level loop in __call__, whose overhead is most of what a tiny op costs.
_data = operator.attrgetter("data")
_requires_grad = operator.attrgetter("requires_grad")


class ShapeError(ValueError):
    """Operands whose shapes do not fit the operation; the message names both."""


class InputError(ValueError):
    """Inputs whose values a Function's ``forward`` rejects, in a message complete in itself: it
    reaches the caller as it is, the same from a replayed trace (``tg.jit``) as from eager mode."""


class AnomalyError(FloatingPointError):
    """A NaN or Inf appeared under :func:`tensorgrad.detect_anomaly`."""


class Function:
    """Subclass with ``forward(*arrays)`` and ``backward(*grad_outputs)``.

    ``forward`` receives the inputs' ndarrays and returns an ndarray or a tuple of them.
    ``backward`` receives one gradient Variable per output and returns one gradient
    Variable (or None) per input. Write it with Variable operations, so that recording the
    backward pass (``create_graph=True``) gives higher-order gradients. In ``backward``,
    ``self.inputs`` are the input Variables and ``self.outputs`` weak references to the
    outputs. Constant arguments (axes, indices, probabilities) go to ``__init__``.

    Calling an instance records it, when any input requires a gradient and gradient mode
    is on; each instance is called once. A Function whose outputs have no gradient at all
    (a comparison's booleans) sets ``differentiable = False``: it is never recorded, and
    needs no ``backward``.

    The one hook for speed, the rule of PyTorch's ``once_differentiable``: a Function may
    also define ``numpy_backward(self, *grad_output_arrays)``, which receives one ndarray
    per output (zeros for an output without gradient, or None where the Function sets
    ``materialize_grads = False``, as ``ctx.set_materialize_grads(False)`` in PyTorch: a
    replayed ``tg.jit`` plan, which tells its inputs that no gradient reaches from those
    that got one) and returns an ndarray or None per
    input (a single ndarray for one input, else a tuple). The engine calls it instead of
    ``backward`` when the backward pass is not recorded (``create_graph=False``); when it is
    recorded, ``backward`` runs, so ``backward`` stays the one definition of the gradient
    and ``numpy_backward`` only computes the same numbers faster. A fused recurrent cell
    derives its ``backward`` from its composed form (see :mod:`tensorgrad.functions.cells`).
    """

    op = None  # the name shown in graphs and errors; defaults to the class name
    differentiable = True
    materialize_grads = True

    def __call__(self, *inputs):
        for x in inputs:
            if not isinstance(x, Variable):
                inputs = tuple(as_variable(x) for x in inputs)
                break
        try:
            ys = self.forward(*map(_data, inputs))
        except (ShapeError, InputError):
            raise
        except (ValueError, IndexError) as error:
            shapes = ", ".join(str(x.shape) for x in inputs)
            raise type(error)(f"{self.name}: {error} (input shapes {shapes})") from error
        record = self.differentiable and state.grad_enabled and any(map(_requires_grad, inputs))
        single = not isinstance(ys, tuple)
        if single:
            outputs = (Variable._result(ys, record),)
        else:
            outputs = tuple([Variable._result(y, record) for y in ys])
        if state.anomaly:
            self.source = _user_source_line()
            self.scope = state.scope
            check_finite(self, "output", [y.data for y in outputs], state.step_axis)
        if state.tracer is not None:
            state.tracer.append((self, inputs, outputs))
        if record:
            self.inputs = inputs
            self.seq = next(_sequence)
            self.scope = state.scope
            if single:
                self.outputs = (weakref.ref(outputs[0]),)
                outputs[0].creator = self
                return outputs[0]
            self.outputs = tuple(map(weakref.ref, outputs))
            self.output_specs = tuple((y.shape, y.dtype) for y in ys)  # for zeros if an output died
            for y in outputs:
                y.creator = self
        return outputs[0] if single else outputs

    @property
    def name(self):
        return self.op or type(self).__name__

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} defines no forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} defines no backward")

    def __repr__(self):
        return f"<{self.name} #{getattr(self, 'seq', '-')}>"


def _user_source_line():
    """``file:line: code`` of the innermost stack frame outside the library's packages."""
    frame, _ = user_frame()
    if frame is None:
        return "<unknown>"
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f"{frame.f_code.co_filename}:{frame.f_lineno}: {code}"


def check_finite(function, what, arrays, step_axis=None):
    """Raise :class:`AnomalyError` at the first array of ``arrays`` (``function``'s outputs
    or input gradients, as ``what`` says) holding a NaN or Inf, naming its first bad index.

    ``step_axis``: the arrays hold the time steps along this axis (see
    :class:`tensorgrad.step_axis`); the error then names the scope of the step at the bad
    index, ``<function's scope>/t=<index along the axis>`` (an array with fewer axes keeps
    the Function's scope).
    """
    for i, array in enumerate(arrays):
        if array is not None and array.dtype.kind == "f" and not np.isfinite(array).all():
            first = tuple(int(k) for k in np.argwhere(~np.isfinite(array))[0])
            where = getattr(function, "source", "<recorded outside detect_anomaly>")
            scope = getattr(function, "scope", None)
            if step_axis is not None and step_axis < array.ndim:
                step = f"t={first[step_axis]}"
                scope = step if scope is None else f"{scope}/{step}"
            in_scope = f" in scope {scope}" if scope else ""
            raise AnomalyError(f"{function.name}: {what} {i} of shape {array.shape} contains "
                               f"NaN or Inf at index {first}; the Function was recorded"
                               f"{in_scope} at {where}")
