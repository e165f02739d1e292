"""Recurrent cells: one time step of the RNN, LSTM and GRU, composed and fused.

A step computes every gate at once from two affine maps: the input side
a = x Wᵢₕᵀ + bᵢₕ, which a recurrent layer computes for all steps in one matmul before its
loop, and the hidden side b = h Wₕₕᵀ + bₕₕ, which needs the previous step's state.

The composed forms (:func:`rnn_step`, :func:`lstm_step`, :func:`gru_step`) are the
equations, written once, from primitive Functions: PyTorch's cells, and the variants that
change the inside of a step (peepholes, a normalised cell state, the GRU's reset gate
before the hidden matmul). Each returns its gates as well as the next state.

The fused Functions (:class:`FusedRNNCell`, :class:`FusedLSTMCell`, :class:`FusedGRUCell`)
compute PyTorch's standard cells, hidden side included, in one node per step, with a NumPy
forward and an array-level ``numpy_backward`` (see :class:`~tensorgrad.Function`) whose
arrays are named after the symbols of their docstrings' equations. Their recorded
``backward`` differentiates the composed form, so the equations are not written twice.
"""

import numpy as np

from tensorgrad.autograd import grad
from tensorgrad.function import Function, ShapeError
from tensorgrad.functions._util import one
from tensorgrad.functions.arithmetic import linear
from tensorgrad.functions.elementwise import relu, sigmoid, sigmoid_array, tanh
from tensorgrad.functions.shape import split
from tensorgrad.variable import as_variable

NONLINEARITIES = ("tanh", "relu")
LSTM_GATES = ("i", "f", "g", "o")  # in the order of the gates' rows in the weights, as in PyTorch
GRU_GATES = ("r", "z", "n")
GATE_NONLINEARITIES = {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid",
                       "r": "sigmoid", "z": "sigmoid", "n": "tanh"}


# ----------------------------------------------------------------------------- composed forms
def rnn_step(input_gates, hidden_gates, nonlinearity="tanh"):
    """One Elman step h' = tanh(a + b) (or relu) from the input and hidden sides a, b."""
    pre_activation = input_gates + hidden_gates
    return tanh(pre_activation) if nonlinearity == "tanh" else relu(pre_activation)


def lstm_step(input_gates, hidden_gates, c, peephole=None, cell_norm=None):
    """One LSTM step. With [zᵢ, z_f, z_g, z_o] = a + b (a, b: the input and hidden sides of
    the gates) and peephole weights w_ci, w_cf, w_co (left out when ``peephole`` is None),

        i = σ(zᵢ + w_ci ⊙ c),  f = σ(z_f + w_cf ⊙ c),  g = tanh(z_g)
        c' = f ⊙ c + i ⊙ g
        o = σ(z_o + w_co ⊙ c'),  h' = o ⊙ tanh(N(c'))

    where N is ``cell_norm`` (the identity when None). The output gate sees the new cell
    state c', the other two the old one. Returns ((h', c'), (i, f, g, o)).
    """
    z_i, z_f, z_g, z_o = split(input_gates + hidden_gates, 4, axis=-1)
    if peephole is not None:
        w_ci, w_cf, w_co = peephole
        z_i = z_i + w_ci * c
        z_f = z_f + w_cf * c
    i, f, g = sigmoid(z_i), sigmoid(z_f), tanh(z_g)
    c_next = f * c + i * g
    if peephole is not None:
        z_o = z_o + w_co * c_next
    o = sigmoid(z_o)
    h_next = o * tanh(c_next if cell_norm is None else cell_norm(c_next))
    _name_gates(LSTM_GATES, (i, f, g, o))
    return (h_next, c_next), (i, f, g, o)


def gru_step(input_gates, hidden_gates, h, hidden_n=None):
    """One GRU step, from the input side a = [aᵣ, a_z, aₙ] of the gates:

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  h' = (1 - z) ⊙ n + z ⊙ h, with

        n = tanh(aₙ + r ⊙ bₙ)           reset after the matmul (PyTorch's form), or
        n = tanh(aₙ + hidden_n(r ⊙ h))   reset before it, when ``hidden_n`` is given.

    ``hidden_gates`` is the hidden side [bᵣ, b_z, bₙ] = h Wₕₕᵀ + bₕₕ, or just [bᵣ, b_z] with
    ``hidden_n``, which maps r ⊙ h to its n-part (r ⊙ h) Wₕₙᵀ + bₕₙ. Returns ((h',), (r, z, n)).
    """
    a_r, a_z, a_n = split(input_gates, 3, axis=-1)
    if hidden_n is None:
        b_r, b_z, b_n = split(hidden_gates, 3, axis=-1)
    else:
        b_r, b_z = split(hidden_gates, 2, axis=-1)
    r = sigmoid(a_r + b_r)
    z = sigmoid(a_z + b_z)
    n = tanh(a_n + (r * b_n if hidden_n is None else hidden_n(r * h)))
    _name_gates(GRU_GATES, (r, z, n))
    return ((1 - z) * n + z * h,), (r, z, n)


def _name_gates(names, gates):
    """Name the gate Variables (i, f, g, o or r, z, n), as drawings of the graph label them."""
    for name, gate in zip(names, gates, strict=True):
        gate.name = name


# ----------------------------------------------------------------------------- fused Functions
def _slices(z, n):
    """The n equal slices of z along its last axis (views)."""
    H = z.shape[-1] // n
    return [z[..., k * H:(k + 1) * H] for k in range(n)]


def _add_into(a, b):
    """a + b, written into b (a step's own array) when both have one dtype (else NumPy promotes)."""
    return np.add(a, b, out=b) if a.dtype == b.dtype else a + b


def _rows(array):
    """``array`` (..., n) as a 2-d array of rows (m, n)."""
    return array.reshape(-1, array.shape[-1])


class _StandIn(Function):
    """y = x: the input of a fused cell as its composed form sees it, so that differentiating
    the composed form gives the gradients with respect to the cell's own inputs."""

    op = "identity"

    def forward(self, x):
        return x

    def backward(self, gy):
        return gy


class _FusedCell(Function):
    """What the fused cells share: the inputs (a, h, [c,] Wₕₕ[, bₕₕ]), the hidden side
    b = h Wₕₕᵀ + bₕₕ in forward, the gradients through it in ``numpy_backward``, and the
    recorded ``backward``, which differentiates :meth:`composed`.

    Each cell writes its equations once, as two methods on arrays that keep nothing on the
    Function: ``gates(a, b, h[, c], out=None)`` returns (the outputs, what backward needs),
    h' written into ``out`` if given; it may overwrite b, the step's own array (made by
    :meth:`hidden_side` for that step alone), with a + b. ``gates_backward(saved, grad_b,
    *grad_outputs)`` writes ∂L/∂b into ``grad_b`` and returns (∂L/∂a — ``grad_b`` itself
    where ``grad_a_is_grad_b`` —, the part of ∂L/∂h that does not pass through b or None[,
    ∂L/∂c]). ``forward`` and ``numpy_backward`` call them for one step; ``tg.jit``'s planner
    calls them in one loop for all the steps of a sequence (:mod:`tensorgrad.jit_recurrence`).

    ``weight_t``, if given, is Wₕₕᵀ copied into C order by a layer that multiplies by it at
    every step: BLAS multiplies a thin h by it up to twice as fast as by the view ``Wₕₕ.T``.
    It must hold Wₕₕ's current values.
    """

    states = 1  # h; the LSTM has (h, c)
    grad_a_is_grad_b = True  # ∂L/∂a = ∂L/∂b, one array (not so in the GRU, whose r multiplies bₙ)
    grad_hidden_side = None  # where numpy_backward writes ∂L/∂b, if a plan gives it (see hidden_side_inputs)

    def __init__(self, weight_t=None):
        self.weight_t = weight_t

    def hidden_side(self, h, W, b):
        """b = h Wₕₕᵀ + bₕₕ."""
        side = h @ (W.T if self.weight_t is None else self.weight_t)
        if b is not None:
            side += b
        return side

    def hidden_side_inputs(self):
        """The positions (h, Wₕₕ, bₕₕ or None) among the inputs of the hidden side b = h Wₕₕᵀ + bₕₕ.

        For ``tg.jit``'s plan: with Wₕₕ and bₕₕ given as needing no gradient, ``numpy_backward``
        leaves theirs out, and writes ∂L/∂b into the array ``grad_hidden_side`` that the plan
        sets before calling it (row t of one array for all steps of a sequence); the plan then
        sums Σₜ ∂L/∂bₜᵀ hₜ over the sequence in one matmul, with nothing to copy.
        """
        return 1, 1 + self.states, 2 + self.states if len(self.inputs) == 3 + self.states else None

    def numpy_backward(self, *grad_outputs):
        a, h, W = self.inputs[0], self.inputs[1], self.inputs[1 + self.states]
        bias = self.inputs[2 + self.states] if len(self.inputs) == 3 + self.states else None
        grad_b = np.empty_like(a.data) if self.grad_hidden_side is None else self.grad_hidden_side
        grad_a, grad_h_direct, *grad_more_state = self.gates_backward(self.saved, grad_b, *grad_outputs)
        grad_h = grad_b @ W.data if h.requires_grad else None
        if grad_h is not None and grad_h_direct is not None:
            grad_h += grad_h_direct
        grad_W = weight_gradient(grad_b, h.data) if W.requires_grad else None
        grad_bias = bias_gradient(grad_b) if bias is not None and bias.requires_grad else None
        grads = (grad_a, grad_h, *grad_more_state, grad_W, grad_bias)[:len(self.inputs)]
        return tuple(g if x.requires_grad else None for g, x in zip(grads, self.inputs, strict=True))

    def composed(self, *inputs):
        """The cell's outputs computed by its composed form from ``inputs`` (Variables)."""
        raise NotImplementedError

    def backward(self, *grad_outputs):
        """The gradients with respect to the inputs, recorded: those of the composed form."""
        stand_ins = [_StandIn()(x) if x.requires_grad else x for x in self.inputs]
        wanted = [x for x in stand_ins if x.creator is not None]
        found = iter(grad(self.composed(*stand_ins), wanted, list(grad_outputs), create_graph=True))
        return tuple(next(found) if x.creator is not None else None for x in stand_ins)


def weight_gradient(grad_b, h):
    """∂L/∂Wₕₕ = Σ ∂L/∂bᵀ h over the rows (the batch, and the steps if given as one array) of b = h Wₕₕᵀ."""
    return _rows(grad_b).T @ _rows(h)


def bias_gradient(grad_b):
    """∂L/∂bₕₕ = Σ ∂L/∂b over the rows of b = h Wₕₕᵀ + bₕₕ."""
    return _rows(grad_b).sum(axis=0)


class FusedRNNCell(_FusedCell):
    """h' = tanh(z) or relu(z) with z = a + h Wₕₕᵀ + bₕₕ;

        ∂L/∂z = ∂L/∂h' ⊙ (1 - h'²), or ∂L/∂h' ⊙ [h' > 0];  ∂L/∂a = ∂L/∂b = ∂L/∂z
    """

    def __init__(self, nonlinearity, weight_t=None):
        super().__init__(weight_t)
        self.nonlinearity = nonlinearity
        self.op = f"rnn_{nonlinearity}_cell"

    def composed(self, a, h, W, b=None):
        return rnn_step(a, linear(h, W, b), self.nonlinearity)

    def forward(self, a, h, W, b=None):
        (h_next,), self.saved = self.gates(a, self.hidden_side(h, W, b), h)
        return h_next

    def gates(self, a, b, h, out=None):
        z = _add_into(a, b)
        out = z if out is None else out
        h_next = np.tanh(z, out=out) if self.nonlinearity == "tanh" else np.maximum(z, 0, out=out)
        return (h_next,), h_next

    def gates_backward(self, h_next, grad_z, grad_h_next):
        if self.nonlinearity == "tanh":  # (1 - h'²) ⊙ ∂L/∂h', in the one array
            np.multiply(h_next, h_next, out=grad_z)
            np.subtract(one(grad_z.dtype), grad_z, out=grad_z)
            grad_z *= grad_h_next
        else:
            np.multiply(grad_h_next, h_next > 0, out=grad_z)
        return grad_z, None


class FusedLSTMCell(_FusedCell):
    """(h', c') from the gates z = a + h Wₕₕᵀ + bₕₕ = [zᵢ, z_f, z_g, z_o] and the cell state c:

        i = σ(zᵢ),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
        c' = f ⊙ c + i ⊙ g,      h' = o ⊙ tanh(c')

    Backward, with δc = ∂L/∂c' + ∂L/∂h' ⊙ o ⊙ (1 - tanh²(c')) the whole gradient at c':

        ∂L/∂zᵢ = δc ⊙ g ⊙ i(1 - i),   ∂L/∂z_f = δc ⊙ c ⊙ f(1 - f),
        ∂L/∂z_g = δc ⊙ i ⊙ (1 - g²),  ∂L/∂z_o = ∂L/∂h' ⊙ tanh(c') ⊙ o(1 - o),
        ∂L/∂a = ∂L/∂b = ∂L/∂z,        ∂L/∂c = δc ⊙ f

    Both directions work on the four blocks at once where they can: σ over all of z (then
    tanh in the g block), and ∂L/∂z = [δc ⊙ g, δc ⊙ c, δc ⊙ i, ∂L/∂h' ⊙ tanh(c')] ⊙ [σ'(zᵢ), σ'(z_f),
    1 - g², σ'(z_o)] with σ' = σ(1 - σ): a step is then a few NumPy calls on wide arrays, not
    many on narrow ones (the same products, so the same values).
    """

    op = "lstm_cell"
    states = 2

    def composed(self, a, h, c, W, b=None):
        return lstm_step(a, linear(h, W, b), c)[0]

    def forward(self, a, h, c, W, b=None):
        outputs, self.saved = self.gates(a, self.hidden_side(h, W, b), h, c)
        return outputs

    def gates(self, a, b, h, c, out=None):
        gates = _add_into(a, b)  # z, made the activated gates [i, f, g, o] in place
        i, f, g, o = _slices(gates, 4)
        tanh_z_g = np.tanh(g)
        sigmoid_array(gates, out=gates)  # σ of all four blocks, then tanh(z_g) in the g block
        g[...] = tanh_z_g
        c_next = f * c + i * g
        tanh_c_next = np.tanh(c_next)
        return (np.multiply(o, tanh_c_next, out=out), c_next), (gates, tanh_c_next, c)

    def gates_backward(self, saved, grad_z, grad_h_next, grad_c_next):
        gates, tanh_c_next, c = saved
        H = c.shape[-1]
        i, f, g, o = _slices(gates, 4)
        unit = one(c.dtype)
        delta_c = grad_c_next + grad_h_next * o * (unit - tanh_c_next * tanh_c_next)
        grad_z_i, grad_z_f, grad_z_g, grad_z_o = _slices(grad_z, 4)
        np.multiply(delta_c, g, out=grad_z_i)
        np.multiply(delta_c, c, out=grad_z_f)
        np.multiply(delta_c, i, out=grad_z_g)
        np.multiply(grad_h_next, tanh_c_next, out=grad_z_o)
        derivative = _sigmoid_derivative(gates)  # the g block: 1 - g², written over σ'
        one_minus_g2 = derivative[..., 2 * H:3 * H]
        np.multiply(g, g, out=one_minus_g2)
        np.subtract(unit, one_minus_g2, out=one_minus_g2)
        grad_z *= derivative
        return grad_z, None, delta_c * f


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
    grad_a_is_grad_b = False

    def composed(self, a, h, W, b=None):
        return gru_step(a, linear(h, W, b), h)[0][0]

    def forward(self, a, h, W, b=None):
        (h_next,), self.saved = self.gates(a, self.hidden_side(h, W, b), h)
        return h_next

    def gates(self, a, b, h, out=None):
        H = h.shape[-1]
        b_n = b[..., 2 * H:]
        sigma = sigmoid_array(_add_into(a[..., :2 * H], b[..., :2 * H]))  # [r, z]
        r, z = _slices(sigma, 2)
        n = np.tanh(a[..., 2 * H:] + r * b_n)
        return (np.add(n, z * (h - n), out=out),), (sigma, n, b_n, h)  # h' = (1 - z) ⊙ n + z ⊙ h

    def gates_backward(self, saved, grad_b, grad_h_next):
        sigma, n, b_n, h = saved
        r, z = _slices(sigma, 2)
        H = h.shape[-1]
        grad_a = np.empty_like(grad_b)
        grad_a_r, grad_a_z, delta_n = _slices(grad_a, 3)
        unit = one(n.dtype)
        np.multiply(grad_h_next * (unit - z), unit - n * n, out=delta_n)
        # [∂L/∂aᵣ, ∂L/∂a_z] = [δn ⊙ bₙ, ∂L/∂h' ⊙ (h - n)] ⊙ σ'([aᵣ + bᵣ, a_z + b_z]), in one product
        np.multiply(delta_n, b_n, out=grad_a_r)
        np.multiply(grad_h_next, h - n, out=grad_a_z)
        grad_a[..., :2 * H] *= _sigmoid_derivative(sigma)
        grad_b[...] = grad_a
        _slices(grad_b, 3)[2][...] = delta_n * r
        return grad_a, grad_h_next * z


def _sigmoid_derivative(sigma):
    """σ'(x) = σ(x)(1 - σ(x)), from σ(x)."""
    derivative = one(sigma.dtype) - sigma
    derivative *= sigma
    return derivative


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


def rnn_cell(input_gates, h, weight_hh, bias_hh=None, nonlinearity="tanh", *, fused=True, weight_t=None):
    """The Elman cell h' = tanh(a + h Wₕₕᵀ + bₕₕ) (or relu), from the input side a = x Wᵢₕᵀ + bᵢₕ.

    ``fused=False`` records the composed form instead of the one fused node; ``weight_t``:
    see :class:`_FusedCell`.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"rnn_cell: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
    cell = FusedRNNCell(nonlinearity, weight_t)
    operands = _checked("rnn_cell", 1, input_gates, h, weight_hh, bias_hh)
    return cell(*operands) if fused else cell.composed(*operands)


def lstm_cell(input_gates, h, c, weight_hh, bias_hh=None, *, fused=True, weight_t=None):
    """(h', c') of the LSTM cell (gates in PyTorch's order i, f, g, o); see FusedLSTMCell and rnn_cell."""
    cell = FusedLSTMCell(weight_t)
    operands = _checked("lstm_cell", 4, input_gates, h, weight_hh, bias_hh, c)
    return cell(*operands) if fused else cell.composed(*operands)


def gru_cell(input_gates, h, weight_hh, bias_hh=None, *, fused=True, weight_t=None):
    """h' of PyTorch's GRU cell (gates in the order r, z, n); see FusedGRUCell and rnn_cell."""
    cell = FusedGRUCell(weight_t)
    operands = _checked("gru_cell", 3, input_gates, h, weight_hh, bias_hh)
    return cell(*operands) if fused else cell.composed(*operands)
