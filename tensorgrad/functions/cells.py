"""Recurrent cells as fused Functions: one node per time step, PyTorch's equations.

A cell step computes every gate at once from two affine maps: the input side
a = x Wᵢₕᵀ + bᵢₕ, which a recurrent layer computes for all steps in one matmul before its
loop, and the hidden side b = h Wₕₕᵀ + bₕₕ, which needs the previous step's state. The
cell Functions here take a, the state and Wₕₕ, bₕₕ, and compute b and the next state in
one node, with a hand-written NumPy backward, instead of the dozen primitive nodes of the
composed form. Their backward hands the engine Wₕₕ's gradient as a
:class:`~tensorgrad.autograd.SumOfProducts`, so that over a sequence it is one matmul.

The composed form (``fused=False``) is kept, built from primitive Functions only: it is
the reference the fused one is tested against, it draws nicely, and it supplies the
higher derivatives. When the backward pass is itself recorded (``create_graph=True``), a
fused cell's backward differentiates its composed form instead of running the NumPy
formulas, so the formulas are written once.
"""

import numpy as np

from tensorgrad.autograd import grad
from tensorgrad.function import Function, ShapeError
from tensorgrad.functions._util import result_dtype
from tensorgrad.functions.arithmetic import linear, linear_gradients
from tensorgrad.functions.elementwise import relu, sigmoid, sigmoid_array, tanh
from tensorgrad.functions.shape import split
from tensorgrad.modes import is_grad_enabled
from tensorgrad.steps import empty
from tensorgrad.variable import Variable, as_variable

NONLINEARITIES = ("tanh", "relu")


# ----------------------------------------------------------------------------- composed forms
def _rnn_cell_composed(input_gates, h, weight_hh, bias_hh=None, *, nonlinearity):
    pre_activation = input_gates + linear(h, weight_hh, bias_hh)
    return tanh(pre_activation) if nonlinearity == "tanh" else relu(pre_activation)


def _lstm_cell_composed(input_gates, h, c, weight_hh, bias_hh=None):
    i, f, g, o = split(input_gates + linear(h, weight_hh, bias_hh), 4, axis=-1)
    c_next = sigmoid(f) * c + sigmoid(i) * tanh(g)
    return sigmoid(o) * tanh(c_next), c_next


def _gru_cell_composed(input_gates, h, weight_hh, bias_hh=None):
    a_r, a_z, a_n = split(input_gates, 3, axis=-1)
    b_r, b_z, b_n = split(linear(h, weight_hh, bias_hh), 3, axis=-1)
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


def _sigmoid_slope_times(y, *factors, out):
    """σ'(x) ⊙ factors = y(1 - y) ⊙ f₁ ⊙ f₂ ... for y = σ(x), into ``out``."""
    _one_minus(y, out)
    out *= y
    for factor in factors:
        out *= factor
    return out


class _FusedCell(Function):
    """What the fused cells share: the inputs (a, h, [c,] Wₕₕ[, bₕₕ]), the hidden side
    b = h Wₕₕᵀ + bₕₕ in forward, and the gradients through it in backward.

    ``weight_t``, if given, is Wₕₕᵀ copied into C order by a layer that multiplies by it at
    every step: BLAS multiplies a thin h by it up to twice as fast as by the view ``Wₕₕ.T``.
    It must hold Wₕₕ's current values. ``step`` (a :class:`tensorgrad.steps.Step`): the
    step's arrays are slices of arrays laid out for the sequence.
    """

    states = 1  # h; the LSTM has (h, c)

    def __init__(self, weight_t=None, step=None):
        self.weight_t = weight_t
        self.step = step

    @property
    def _bias(self):
        """The input bₕₕ, or None if the cell was called without it."""
        return self.inputs[2 + self.states] if len(self.inputs) == 3 + self.states else None

    def _hidden_side(self, h, W, b, name, dtype):
        """b = h Wₕₕᵀ + bₕₕ, into the step's array ``name``."""
        side = empty(self.step, name, h.shape[:-1] + W.shape[:1], dtype)
        np.matmul(h, W.T if self.weight_t is None else self.weight_t, out=side)
        if b is not None:
            side += b
        return side

    def _through_hidden_side(self, grad_side):
        """(∂L/∂h, ∂L/∂Wₕₕ, ∂L/∂bₕₕ) from ∂L/∂b, the gradient at the hidden side b = h Wₕₕᵀ + bₕₕ
        (see :func:`~tensorgrad.functions.arithmetic.linear_gradients`)."""
        return linear_gradients(grad_side, self.inputs[1], self.inputs[1 + self.states], self._bias)

    def _gradients(self, grad_input_side, grad_h, grad_W, grad_b, *grad_more_state):
        """The backward's result, one per input, from arrays (and SumOfProducts)."""
        grads = [Variable._result(g, False) if g is not None else None
                 for g in (grad_input_side, grad_h, *grad_more_state)]
        grads.append(grad_W)
        if self._bias is not None:
            grads.append(grad_b)
        return tuple(grads)

    def composed(self, *inputs):
        """The cell's equations composed from primitive Functions (for the recorded backward)."""
        raise NotImplementedError

    def numpy_backward(self, *grad_outputs):
        """The input gradients, one per input, from the output gradients' arrays (not recorded)."""
        raise NotImplementedError

    def backward(self, *grad_outputs):
        if is_grad_enabled():
            return _composed_gradients(self, self.composed, list(grad_outputs))
        return self.numpy_backward(*[g.data for g in grad_outputs])


class FusedRNNCell(_FusedCell):
    """h' = tanh(z) or relu(z) with z = a + h Wₕₕᵀ + bₕₕ;

        ∂L/∂z = ∂L/∂h' ⊙ (1 - h'²), or ∂L/∂h' ⊙ [h' > 0];  ∂L/∂a = ∂L/∂b = ∂L/∂z
    """

    def __init__(self, nonlinearity, weight_t=None, step=None):
        super().__init__(weight_t, step)
        self.nonlinearity = nonlinearity
        self.op = f"rnn_{nonlinearity}_cell"

    def composed(self, *inputs):
        return _rnn_cell_composed(*inputs, nonlinearity=self.nonlinearity)

    def forward(self, a, h, W, b=None):
        z = self._hidden_side(h, W, b, "h", result_dtype(a, h, W))
        z += a
        if self.nonlinearity == "tanh":
            return np.tanh(z, out=z)
        return np.maximum(z, 0, out=z)

    def numpy_backward(self, grad_h):
        h = self.outputs[0]().data
        g = empty(self.step, "grad_gates", h.shape, h.dtype)
        if self.nonlinearity == "tanh":
            _one_minus(np.multiply(h, h, out=g), g)
            g *= grad_h
        else:
            np.multiply(grad_h, h > 0, out=g)
        return self._gradients(g, *self._through_hidden_side(g))


class FusedLSTMCell(_FusedCell):
    """(h', c') from the gates z = a + h Wₕₕᵀ + bₕₕ = [zᵢ, z_f, z_g, z_o] and the cell state c:

        i = σ(zᵢ),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
        c' = f ⊙ c + i ⊙ g,      h' = o ⊙ tanh(c')

    Backward, with δc = ∂L/∂c' + ∂L/∂h' ⊙ o ⊙ (1 - tanh²(c')) the whole gradient at c':

        ∂L/∂zᵢ = δc ⊙ g ⊙ i(1 - i),   ∂L/∂z_f = δc ⊙ c ⊙ f(1 - f),
        ∂L/∂z_g = δc ⊙ i ⊙ (1 - g²),  ∂L/∂z_o = ∂L/∂h' ⊙ tanh(c') ⊙ o(1 - o),
        ∂L/∂a = ∂L/∂b = ∂L/∂z,        ∂L/∂c = δc ⊙ f
    """

    op = "lstm_cell"
    states = 2
    composed = staticmethod(_lstm_cell_composed)

    def forward(self, a, h, c, W, b=None):
        dtype = result_dtype(a, h, c, W)
        gates = self._hidden_side(h, W, b, "gates", dtype)  # activated in place
        gates += a
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

    def numpy_backward(self, grad_h, grad_c):
        gates, c_next = self.saved
        i, f, g, o = _gates(gates, 4)
        c = self.inputs[2].data
        dz = empty(self.step, "grad_gates", gates.shape, gates.dtype)
        di, df, dg, do = _gates(dz, 4)
        tanh_c = np.tanh(c_next)
        dc = np.multiply(tanh_c, tanh_c)
        _one_minus(dc, dc)
        dc *= o
        dc *= grad_h
        dc += grad_c
        _sigmoid_slope_times(o, tanh_c, grad_h, out=do)
        _sigmoid_slope_times(i, g, dc, out=di)
        _sigmoid_slope_times(f, c, dc, out=df)
        np.multiply(g, g, out=dg)
        _one_minus(dg, dg)
        dg *= i
        dg *= dc
        dc *= f
        return self._gradients(dz, *self._through_hidden_side(dz), dc)


class FusedGRUCell(_FusedCell):
    """h' from the input side a = [aᵣ, a_z, aₙ], the hidden side b = h Wₕₕᵀ + bₕₕ = [bᵣ, b_z, bₙ]
    and h:

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  n = tanh(aₙ + r ⊙ bₙ)
        h' = (1 - z) ⊙ n + z ⊙ h

    The reset gate multiplies bₙ = Wₕₙ h + bₕₙ, bias included, as in PyTorch. Backward,
    with δn = ∂L/∂h' ⊙ (1 - z) ⊙ (1 - n²) the gradient at n's pre-activation:

        ∂L/∂aᵣ = ∂L/∂bᵣ = δn ⊙ bₙ ⊙ r(1 - r),  ∂L/∂a_z = ∂L/∂b_z = ∂L/∂h' ⊙ (h - n) ⊙ z(1 - z),
        ∂L/∂aₙ = δn,  ∂L/∂bₙ = δn ⊙ r,  and ∂L/∂h = ∂L/∂h' ⊙ z plus the path through b
    """

    op = "gru_cell"
    composed = staticmethod(_gru_cell_composed)

    def forward(self, a, h, W, b=None):
        dtype = result_dtype(a, h, W)
        H = h.shape[-1]
        gates = self._hidden_side(h, W, b, "gates", dtype)  # [bᵣ, b_z, bₙ], made r, z, n in place
        r, z, n = _gates(gates, 3)
        hidden_n = empty(self.step, "hidden_n", h.shape, dtype)  # bₙ, kept for backward
        hidden_n[...] = n
        rz = gates[..., :2 * H]
        rz += a[..., :2 * H]
        sigmoid_array(rz, out=rz)
        np.multiply(r, hidden_n, out=n)
        n += a[..., 2 * H:]
        np.tanh(n, out=n)
        self.saved = gates, hidden_n
        h_next = np.subtract(h, n, out=empty(self.step, "h", h.shape, dtype))
        h_next *= z
        h_next += n
        return h_next

    def numpy_backward(self, grad_h):
        gates, hidden_n = self.saved
        r, z, n = _gates(gates, 3)
        h = self.inputs[1].data
        H = h.shape[-1]
        da = empty(self.step, "grad_input_gates", gates.shape, gates.dtype)
        dr, dz, dn = _gates(da, 3)
        np.multiply(n, n, out=dn)
        _one_minus(dn, dn)
        work = _one_minus(z, None)
        dn *= work
        dn *= grad_h
        work *= z
        np.subtract(h, n, out=dz)
        dz *= work
        dz *= grad_h
        _sigmoid_slope_times(r, hidden_n, dn, out=dr)
        db = empty(self.step, "grad_hidden_gates", gates.shape, gates.dtype)
        db[..., :2 * H] = da[..., :2 * H]
        np.multiply(dn, r, out=db[..., 2 * H:])
        grad_h_through_b, grad_W, grad_b = self._through_hidden_side(db)
        if grad_h_through_b is not None:
            grad_h_through_b += np.multiply(grad_h, z, out=work)
        return self._gradients(da, grad_h_through_b, grad_W, grad_b)


# ----------------------------------------------------------------------------- public functions
def _checked(op, gates, input_gates, h, weight_hh, bias_hh, c=None):
    """The operands as Variables, their shapes checked: a (..., gates·H), h and c (..., H),
    Wₕₕ (gates·H, H), bₕₕ (gates·H,)."""
    a, h, W = as_variable(input_gates), as_variable(h), as_variable(weight_hh)
    b = None if bias_hh is None else as_variable(bias_hh)
    c = None if c is None else as_variable(c)
    h_shape = h.data.shape
    size = h_shape[-1] if h_shape else 0
    fits = (h_shape != () and a.data.shape == h_shape[:-1] + (gates * size,)
            and W.data.shape == (gates * size, size) and (b is None or b.data.shape == (gates * size,))
            and (c is None or c.data.shape == h_shape))
    if not fits:
        side = "H" if gates == 1 else f"{gates}·H"
        given = [f"input gates {a.shape}", f"h {h.shape}"] + ([f"c {c.shape}"] if c is not None else [])
        given += [f"weight_hh {W.shape}"] + ([f"bias_hh {b.shape}"] if b is not None else [])
        expected = [f"(..., {side})", "(..., H)"] + (["(..., H)"] if c is not None else [])
        expected += [f"({side}, H)"] + ([f"({side},)"] if b is not None else [])
        raise ShapeError(f"{op}: {', '.join(given)} do not fit; expected {', '.join(expected)}")
    operands = (a, h) if c is None else (a, h, c)
    return operands + ((W,) if b is None else (W, b))


def rnn_cell(input_gates, h, weight_hh, bias_hh=None, nonlinearity="tanh", *, fused=True,
             weight_t=None, step=None):
    """The Elman cell h' = tanh(a + h Wₕₕᵀ + bₕₕ) (or relu), from the input side a = x Wᵢₕᵀ + bᵢₕ.

    ``weight_t`` and ``step``: a recurrent layer's layout hints (see :class:`_FusedCell`).
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"rnn_cell: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
    operands = _checked("rnn_cell", 1, input_gates, h, weight_hh, bias_hh)
    if fused:
        return FusedRNNCell(nonlinearity, weight_t, step)(*operands)
    return _rnn_cell_composed(*operands, nonlinearity=nonlinearity)


def lstm_cell(input_gates, h, c, weight_hh, bias_hh=None, *, fused=True, weight_t=None, step=None):
    """(h', c') of the LSTM cell (gates in PyTorch's order i, f, g, o); see FusedLSTMCell and rnn_cell."""
    operands = _checked("lstm_cell", 4, input_gates, h, weight_hh, bias_hh, c)
    if fused:
        return FusedLSTMCell(weight_t, step)(*operands)
    return _lstm_cell_composed(*operands)


def gru_cell(input_gates, h, weight_hh, bias_hh=None, *, fused=True, weight_t=None, step=None):
    """h' of PyTorch's GRU cell (gates in the order r, z, n); see FusedGRUCell and rnn_cell."""
    operands = _checked("gru_cell", 3, input_gates, h, weight_hh, bias_hh)
    if fused:
        return FusedGRUCell(weight_t, step)(*operands)
    return _gru_cell_composed(*operands)
