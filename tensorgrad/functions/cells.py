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
from tensorgrad.functions.elementwise import relu, sigmoid, sigmoid_array, tanh
from tensorgrad.functions.shape import split
from tensorgrad.modes import is_grad_enabled
from tensorgrad.steps import empty
from tensorgrad.variable import Variable, as_variable

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
# The NumPy formulas work in place in as few arrays as the equations allow: the cells run
# at every time step, where each temporary array costs as much as the arithmetic. Inside a
# recurrent layer (``step`` given) the arrays are that step's slices of arrays laid out for
# the whole sequence (see tensorgrad.steps).

def _gates(z, n):
    """The n equal slices of z along its last axis (views)."""
    H = z.shape[-1] // n
    return [z[..., k * H:(k + 1) * H] for k in range(n)]


def _one_minus(x, out):
    """1 - x, into ``out``."""
    return np.subtract(1, x, out=out)


class FusedRNNCell(Function):
    """h' = tanh(a + b) or relu(a + b);  ∂L/∂a = ∂L/∂b = ∂L/∂h' ⊙ (1 - h'²), or ⊙ [h' > 0]."""

    def __init__(self, nonlinearity, step=None):
        self.nonlinearity = nonlinearity
        self.op = f"rnn_{nonlinearity}_cell"
        self.step = step

    def forward(self, a, b):
        h = np.add(a, b, out=empty(self.step, "h", a.shape, np.result_type(a, b)))
        if self.nonlinearity == "tanh":
            return np.tanh(h, out=h)
        return np.maximum(h, 0, out=h)

    def backward(self, grad_h):
        if is_grad_enabled():
            composed = functools.partial(_rnn_cell_composed, nonlinearity=self.nonlinearity)
            return _composed_gradients(self, composed, [grad_h])
        h = self.outputs[0]().data
        g = empty(self.step, "grad_gates", h.shape, h.dtype)
        if self.nonlinearity == "tanh":
            _one_minus(np.multiply(h, h, out=g), g)
            g *= grad_h.data
        else:
            np.multiply(grad_h.data, h > 0, out=g)
        g = Variable._result(g, False)
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

    def __init__(self, step=None):
        self.step = step

    def forward(self, a, b, c):
        dtype = np.result_type(a, b, c)
        gates = np.add(a, b, out=empty(self.step, "gates", a.shape, dtype))  # activated in place
        i, f, g, o = _gates(gates, 4)
        sigmoid_array(gates[..., :2 * c.shape[-1]], out=gates[..., :2 * c.shape[-1]])  # i and f
        np.tanh(g, out=g)
        sigmoid_array(o, out=o)
        c_next = np.multiply(f, c, out=empty(self.step, "c", c.shape, dtype))
        tanh_c = np.multiply(i, g)
        c_next += tanh_c
        np.tanh(c_next, out=tanh_c)
        self.saved = gates, c_next  # tanh(c') is computed again in backward: one array less to keep
        return np.multiply(o, tanh_c, out=empty(self.step, "h", c.shape, dtype)), c_next

    def backward(self, grad_h, grad_c):
        if is_grad_enabled():
            return _composed_gradients(self, _lstm_cell_composed, [grad_h, grad_c])
        gates, c_next = self.saved
        i, f, g, o = _gates(gates, 4)
        c, gh = self.inputs[2].data, grad_h.data
        dz = empty(self.step, "grad_gates", gates.shape, gates.dtype)
        di, df, dg, do = _gates(dz, 4)
        tanh_c = np.tanh(c_next)
        dc = np.multiply(tanh_c, tanh_c)
        _one_minus(dc, dc)
        dc *= o
        dc *= gh
        dc += grad_c.data
        _one_minus(o, do)
        do *= o
        do *= tanh_c
        do *= gh
        _one_minus(i, di)
        di *= i
        di *= g
        di *= dc
        _one_minus(f, df)
        df *= f
        df *= c
        df *= dc
        np.multiply(g, g, out=dg)
        _one_minus(dg, dg)
        dg *= i
        dg *= dc
        dc *= f
        dz = Variable._result(dz, False)
        return dz, dz, Variable._result(dc, False)


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

    def __init__(self, step=None):
        self.step = step

    def forward(self, a, b, h):
        dtype = np.result_type(a, b, h)
        H = h.shape[-1]
        gates = empty(self.step, "gates", a.shape, dtype)  # r, z, n side by side
        r, z, n = _gates(gates, 3)
        rz = np.add(a[..., :2 * H], b[..., :2 * H], out=gates[..., :2 * H])
        sigmoid_array(rz, out=rz)
        np.multiply(r, b[..., 2 * H:], out=n)
        n += a[..., 2 * H:]
        np.tanh(n, out=n)
        self.saved = gates
        h_next = np.subtract(h, n, out=empty(self.step, "h", h.shape, dtype))
        h_next *= z
        h_next += n
        return h_next

    def backward(self, grad_h):
        if is_grad_enabled():
            return _composed_gradients(self, _gru_cell_composed, [grad_h])
        gates = self.saved
        r, z, n = _gates(gates, 3)
        h, gh = self.inputs[2].data, grad_h.data
        H = h.shape[-1]
        da = empty(self.step, "grad_input_gates", gates.shape, gates.dtype)
        dr, dz, dn = _gates(da, 3)
        np.multiply(n, n, out=dn)
        _one_minus(dn, dn)
        work = _one_minus(z, None)
        dn *= work
        dn *= gh
        work *= z
        np.subtract(h, n, out=dz)
        dz *= work
        dz *= gh
        _one_minus(r, dr)
        dr *= r
        dr *= self.inputs[1].data[..., 2 * H:]  # bₙ
        dr *= dn
        db = empty(self.step, "grad_hidden_gates", gates.shape, gates.dtype)
        db[..., :2 * H] = da[..., :2 * H]
        np.multiply(dn, r, out=db[..., 2 * H:])
        return (Variable._result(da, False), Variable._result(db, False),
                Variable._result(gh * z, False))


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


def rnn_cell(input_gates, hidden_gates, nonlinearity="tanh", *, fused=True, step=None):
    """The Elman cell h' = tanh(a + b) (or relu) from a = x Wᵢₕᵀ + bᵢₕ and b = h Wₕₕᵀ + bₕₕ.

    ``step``: a recurrent layer's :class:`tensorgrad.steps.Step` the fused cell writes into.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"rnn_cell: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
    a, b = as_variable(input_gates), as_variable(hidden_gates)
    _check_shapes("rnn_cell", 1, a, b)
    if fused:
        return FusedRNNCell(nonlinearity, step)(a, b)
    return _rnn_cell_composed(a, b, nonlinearity)


def lstm_cell(input_gates, hidden_gates, c, *, fused=True, step=None):
    """(h', c') of the LSTM cell (gates in PyTorch's order i, f, g, o); see FusedLSTMCell and rnn_cell."""
    a, b, c = as_variable(input_gates), as_variable(hidden_gates), as_variable(c)
    _check_shapes("lstm_cell", 4, a, b, c)
    if fused:
        return FusedLSTMCell(step)(a, b, c)
    return _lstm_cell_composed(a, b, c)


def gru_cell(input_gates, hidden_gates, h, *, fused=True, step=None):
    """h' of PyTorch's GRU cell (gates in the order r, z, n); see FusedGRUCell and rnn_cell."""
    a, b, h = as_variable(input_gates), as_variable(hidden_gates), as_variable(h)
    _check_shapes("gru_cell", 3, a, b, h)
    if fused:
        return FusedGRUCell(step)(a, b, h)
    return _gru_cell_composed(a, b, h)
