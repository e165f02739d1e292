"""The Function: one differentiable operation, computed at once and recorded on the tape."""

import itertools
import operator
import os
import traceback
import weakref

import numpy as np

from tensorgrad.modes import state
from tensorgrad.variable import Variable, as_variable

_sequence = itertools.count()  # recording order: every input is recorded before its consumers
# For map(): no Python-level loop in __call__, whose overhead is most of what a tiny op costs.
_data = operator.attrgetter("data")
_requires_grad = operator.attrgetter("requires_grad")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ShapeError(ValueError):
    """Operands whose shapes do not fit the operation; the message names both."""


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
    is on; each instance is called once.

    One exception to "Variables in backward": when the backward pass is not recorded, the
    gradient of a weight W used in a product y = x Wᵀ may be returned as a
    :class:`~tensorgrad.autograd.SumOfProducts` (gᵀx kept as its factors), which the engine
    sums over all uses of W in one matmul before anyone sees it (``Linear`` and the fused
    recurrent cells do so).
    """

    op = None  # the name shown in graphs and errors; defaults to the class name

    def __call__(self, *inputs):
        for x in inputs:
            if not isinstance(x, Variable):
                inputs = tuple(as_variable(x) for x in inputs)
                break
        try:
            ys = self.forward(*map(_data, inputs))
        except ShapeError:
            raise
        except (ValueError, IndexError) as error:
            shapes = ", ".join(str(x.shape) for x in inputs)
            raise type(error)(f"{self.name}: {error} (input shapes {shapes})") from None
        record = state.grad_enabled and any(map(_requires_grad, inputs))
        single = not isinstance(ys, tuple)
        if single:
            outputs = (Variable._result(ys, record),)
        else:
            outputs = tuple([Variable._result(y, record) for y in ys])
        if state.anomaly:
            self.source = _user_source_line()
            check_finite(self, "output", [y.data for y in outputs])
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
    """``file:line`` of the innermost stack frame outside tensorgrad itself."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "<unknown>"


def check_finite(function, what, arrays):
    for i, array in enumerate(arrays):
        if array is not None and array.dtype.kind == "f" and not np.isfinite(array).all():
            where = getattr(function, "source", "<recorded outside detect_anomaly>")
            raise AnomalyError(f"{function.name}: {what} {i} of shape {array.shape} contains "
                               f"NaN or Inf; the Function was recorded at {where}")

