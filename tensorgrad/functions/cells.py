"""Recurrent cells as fused Functions: one elementwise node per time step, PyTorch's equations.

A cell step starts from two matmuls that compute every gate at once: the input side
a = x Wᵢₕᵀ + bᵢₕ and the hidden side b = h Wₕₕᵀ + bₕₕ. The cell Functions here turn a, b
(and the previous state) into the next state in one node, with a hand-written NumPy
backward, instead of the dozen primitive nodes of the composed form.

The composed form (``fused=False``) is kept, built from primitive Functions only: it is
the reference the fused one is tested against, it draws nicely, and it supplies the
higher derivatives. When the backward pass is itself recorded (``create_graph=True``), a
fused cell's backward differentiates its composed form instead of running the NumPy
formulas, so the formulas are written once.
"""

import functools

import numpy as np

from tensorgrad.autograd import grad
from tensorgrad.function import Function, ShapeError
from tensorgrad.functions.elementwise import Sigmoid, relu, sigmoid, tanh
from tensorgrad.functions.shape import split
from tensorgrad.modes import is_grad_enabled
from tensorgrad.variable import as_variable

_sigmoid = Sigmoid().forward  # the primitive's overflow-free NumPy sigmoid
NONLINEARITIES = ("tanh", "relu")


# ----------------------------------------------------------------------------- composed forms
def _rnn_cell_composed(input_gates, hidden_gates, nonlinearity):
    pre_activation = input_gates + hidden_gates
    return tanh(pre_activation) if nonlinearity == "tanh" else relu(pre_activation)


def _lstm_cell_composed(input_gates, hidden_gates, c):
    i, f, g, o = split(input_gates + hidden_gates, 4, axis=-1)
    c_next = sigmoid(f) * c + sigmoid(i) * tanh(g)
    return sigmoid(o) * tanh(c_next), c_next


def _gru_cell_composed(input_gates, hidden_gates, h):
    a_r, a_z, a_n = split(input_gates, 3, axis=-1)
    b_r, b_z, b_n = split(hidden_gates, 3, axis=-1)
    r = sigmoid(a_r + b_r)
    z = sigmoid(a_z + b_z)
    n = tanh(a_n + r * b_n)
    return (1 - z) * n + z * h


class _StandIn(Function):
    """y = x: a stand-in for an input while its composed cell is differentiated."""

    op = "identity"

    def forward(self, x):
        return x

    def backward(self, gy):
        return gy


def _composed_gradients(function, composed, grad_outputs):
    """The input gradients of a fused cell ``function``, recorded through its composed form.

    The composed form runs on stand-ins for the inputs. While ``grad`` runs, the stand-ins
    are cut from the graph behind them, so that it walks this one cell and not the whole
    network that led to it; afterwards they are linked back, so the gradients stay
    differentiable with respect to the real inputs.
    """
    stand_ins = [_StandIn()(x) for x in function.inputs]
    links = [x.creator for x in stand_ins]
    try:
        for x in stand_ins:
            x.creator = None
        outputs = composed(*stand_ins)
        return grad(outputs, stand_ins, grad_outputs, create_graph=True)
    finally:
        for x, link in zip(stand_ins, links, strict=True):
            x.creator = link


# ----------------------------------------------------------------------------- fused Functions
class FusedRNNCell(Function):
    """h' = tanh(a + b) or relu(a + b);  ∂L/∂a = ∂L/∂b = ∂L/∂h' ⊙ (1 - h'²), or ⊙ [h' > 0]."""

    def __init__(self, nonlinearity):
        self.nonlinearity = nonlinearity
        self.op = f"rnn_{nonlinearity}_cell"

    def forward(self, a, b):
        pre_activation = a + b
        if self.nonlinearity == "tanh":
            return np.tanh(pre_activation, out=pre_activation)
        return np.maximum(pre_activation, 0, out=pre_activation)

    def backward(self, grad_h):
        if is_grad_enabled():
            composed = functools.partial(_rnn_cell_composed, nonlinearity=self.nonlinearity)
            return _composed_gradients(self, composed, [grad_h])
        h = self.outputs[0]().data
        derivative = 1 - h * h if self.nonlinearity == "tanh" else h > 0
        g = as_variable(grad_h.data * derivative)
        return g, g


class FusedLSTMCell(Function):
    """(h', c') from the gates z = a + b = [zᵢ, z_f, z_g, z_o] and the cell state c:

        i = σ(zᵢ),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
        c' = f ⊙ c + i ⊙ g,      h' = o ⊙ tanh(c')

    Backward, with δc = ∂L/∂c' + ∂L/∂h' ⊙ o ⊙ (1 - tanh²(c')) the whole gradient at c':

        ∂L/∂zᵢ = δc ⊙ g ⊙ i(1 - i),   ∂L/∂z_f = δc ⊙ c ⊙ f(1 - f),
        ∂L/∂z_g = δc ⊙ i ⊙ (1 - g²),  ∂L/∂z_o = ∂L/∂h' ⊙ tanh(c') ⊙ o(1 - o),
        ∂L/∂a = ∂L/∂b = ∂L/∂z,        ∂L/∂c = δc ⊙ f
    """

    op = "lstm_cell"

    def forward(self, a, b, c):
        i, f, g, o = np.split(a + b, 4, axis=-1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c_next = f * c + i * g
        tanh_c = np.tanh(c_next)
        self.saved = i, f, g, o, tanh_c
        return o * tanh_c, c_next

    def backward(self, grad_h, grad_c):
        if is_grad_enabled():
            return _composed_gradients(self, _lstm_cell_composed, [grad_h, grad_c])
        i, f, g, o, tanh_c = self.saved
        c = self.inputs[2].data
        gh = grad_h.data
        dc = grad_c.data + gh * o * (1 - tanh_c * tanh_c)
        dz = as_variable(np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f),
                                         dc * i * (1 - g * g), gh * tanh_c * o * (1 - o)], axis=-1))
        return dz, dz, as_variable(dc * f)


class FusedGRUCell(Function):
    """h' from the input side a = [aᵣ, a_z, aₙ], the hidden side b = [bᵣ, b_z, bₙ] and h:

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  n = tanh(aₙ + r ⊙ bₙ)
        h' = (1 - z) ⊙ n + z ⊙ h

    The reset gate multiplies bₙ = Wₕₙ h + bₕₙ, bias included, as in PyTorch. Backward,
    with δn = ∂L/∂h' ⊙ (1 - z) ⊙ (1 - n²) the gradient at n's pre-activation:

        ∂L/∂aᵣ = ∂L/∂bᵣ = δn ⊙ bₙ ⊙ r(1 - r),  ∂L/∂a_z = ∂L/∂b_z = ∂L/∂h' ⊙ (h - n) ⊙ z(1 - z),
        ∂L/∂aₙ = δn,  ∂L/∂bₙ = δn ⊙ r,  ∂L/∂h = ∂L/∂h' ⊙ z
    """

    op = "gru_cell"

    def forward(self, a, b, h):
        a_r, a_z, a_n = np.split(a, 3, axis=-1)
        b_r, b_z, b_n = np.split(b, 3, axis=-1)
        r = _sigmoid(a_r + b_r)
        z = _sigmoid(a_z + b_z)
        n = np.tanh(a_n + r * b_n)
        self.saved = r, z, n, b_n
        return n + z * (h - n)

    def backward(self, grad_h):
        if is_grad_enabled():
            return _composed_gradients(self, _gru_cell_composed, [grad_h])
        r, z, n, b_n = self.saved
        h = self.inputs[2].data
        gh = grad_h.data
        dn = gh * (1 - z) * (1 - n * n)
        dz = gh * (h - n) * z * (1 - z)
        dr = dn * b_n * r * (1 - r)
        da = np.concatenate([dr, dz, dn], axis=-1)
        db = np.concatenate([dr, dz, dn * r], axis=-1)
        return as_variable(da), as_variable(db), as_variable(gh * z)


# ----------------------------------------------------------------------------- public functions
def _check_shapes(op, gates, a, b, state=None):
    """a and b of one shape (..., gates·H); the state, if any, of shape (..., H)."""
    fits = a.shape == b.shape and a.ndim > 0 and a.shape[-1] % gates == 0
    if fits and state is not None:
        fits = state.shape == a.shape[:-1] + (a.shape[-1] // gates,)
    if not fits:
        side = "(..., H)" if gates == 1 else f"(..., {gates}·H)"
        given, expected = f"{a.shape} and {b.shape}", f"{side} and {side}"
        if state is not None:
            given = f"{a.shape}, {b.shape} and a state {state.shape}"
            expected = f"{side}, {side} and (..., H)"
        raise ShapeError(f"{op}: input-side and hidden-side pre-activations {given} do not fit; "
                         f"expected {expected}")


def rnn_cell(input_gates, hidden_gates, nonlinearity="tanh", *, fused=True):
    """The Elman cell h' = tanh(a + b) (or relu) from a = x Wᵢₕᵀ + bᵢₕ and b = h Wₕₕᵀ + bₕₕ."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"rnn_cell: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
    a, b = as_variable(input_gates), as_variable(hidden_gates)
    _check_shapes("rnn_cell", 1, a, b)
    if fused:
        return FusedRNNCell(nonlinearity)(a, b)
    return _rnn_cell_composed(a, b, nonlinearity)


def lstm_cell(input_gates, hidden_gates, c, *, fused=True):
    """(h', c') of the LSTM cell (gates in PyTorch's order i, f, g, o); see FusedLSTMCell."""
    a, b, c = as_variable(input_gates), as_variable(hidden_gates), as_variable(c)
    _check_shapes("lstm_cell", 4, a, b, c)
    if fused:
        return FusedLSTMCell()(a, b, c)
    return _lstm_cell_composed(a, b, c)


def gru_cell(input_gates, hidden_gates, h, *, fused=True):
    """h' of PyTorch's GRU cell (gates in the order r, z, n); see FusedGRUCell."""
    a, b, h = as_variable(input_gates), as_variable(hidden_gates), as_variable(h)
    _check_shapes("gru_cell", 3, a, b, h)
    if fused:
        return FusedGRUCell()(a, b, h)
    return _gru_cell_composed(a, b, h)
