"""Recurrent cells: one step of RNN, LSTM and GRU with PyTorch's parameters and equations, and variants.

Parameter names and shapes, gate order (LSTM i, f, g, o; GRU r, z, n), equations and the
initialisation U(-1/√H, 1/√H) are PyTorch's, so state dicts move between the two. A step is
one fused cell Function (``tensorgrad.functions.lstm_cell`` and its siblings), which adds
the hidden side h Wₕₕᵀ + bₕₕ, one matmul, to the input side x Wᵢₕᵀ + bᵢₕ and computes the
next state. The cell modules (:class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`) take
one step; the layers of :mod:`nn.recurrent` take the same steps over a sequence, with the
same parameters, per layer and direction, and the same options, through the public part of
this module: :class:`CellEquations` (one cell's equations bound to its parameters: the input
projection of a whole sequence, then one step at a time), :func:`cell_parameters`,
:func:`set_variant`, :func:`variant_repr`, :func:`initial_state` and :func:`rnn_mode`.

Options PyTorch does not have, all off by default (the modules are then PyTorch's exactly):

- ``peephole=True`` (LSTM): the gates see the cell state (see
  :func:`tensorgrad.functions.cells.lstm_step`),
  with the peephole weights ``weight_ci``, ``weight_cf``, ``weight_co`` of shape (H,) per
  cell, drawn like the others and registered after its standard parameters.
- ``layer_norm=True`` (LSTM, GRU): each gate's input and hidden projections are normalised
  on their own, before the biases, and the LSTM's cell state before its output tanh:
  z = N(x Wᵢₕᵀ) ⊙ γᵢₕ + bᵢₕ + N(h Wₕₕᵀ) ⊙ γₕₕ + bₕₕ and h' = o ⊙ tanh(N(c') ⊙ γ_c + β_c).
  Extra parameters ``ln_weight_ih``, ``ln_weight_hh`` (gates·H, ones) and, for the LSTM,
  ``ln_weight_c`` (H, ones) and ``ln_bias_c`` (H, zeros), after the others.
- ``reset_after=False`` (GRU): the reset gate multiplies h before the hidden matmul,
  n = tanh(Wᵢₙ x + bᵢₙ + Wₕₙ (r ⊙ h) + bₕₙ), with the same parameters.
- ``forget_bias=b`` (LSTM): b is added to the forget gate's slice of ``bias_ih`` at
  initialisation (Gers et al.; Jozefowicz et al. recommend 1), so bᵢₕ + bₕₕ starts b higher.

Peepholes, layer normalisation and the reset-before GRU run the composed cells of
:mod:`tensorgrad.functions.cells` (primitive Functions), slower than the fused cells.
"""

import math
import numbers

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from nn import init
from nn.checks import check_dtype, check_size
from nn.layers import layer_norm
from nn.module import Module, Parameter
from tensorgrad.functions.cells import GRU_GATES, LSTM_GATES, gru_step, lstm_step

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
GATE_NAMES = {"RNN_TANH": (), "RNN_RELU": (), "LSTM": LSTM_GATES, "GRU": GRU_GATES}


class _TransposedCopy(tg.Function):
    """Wᵀ copied into C order. A Function (called unrecorded), so that a traced layer
    (``tg.jit``) copies the current W at every replay instead of keeping the traced copy."""

    op = "transposed_copy"

    def forward(self, W):
        return np.ascontiguousarray(W.T)


def rnn_mode(owner, nonlinearity):
    """The mode "RNN_TANH" or "RNN_RELU" of an Elman ``owner`` with ``nonlinearity``."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{owner}: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def _uniform(shape, hidden_size):
    """A float32 Parameter drawn from PyTorch's U(-1/√H, 1/√H)."""
    return Parameter(init.uniform(shape, 1.0 / math.sqrt(hidden_size)))


def initial_state(owner, hx, names, shape, inner_shape, dtype, sizes=None):
    """The state tuple, (h,) or (h, c) as ``names`` says, from ``hx`` of ``shape`` (zeros for None),
    reshaped to ``inner_shape``. ``sizes``: the last axis of each state, where they differ
    (an LSTM with projections: h of proj_size, c of hidden_size)."""
    pair = len(names) == 2
    sizes = sizes or (shape[-1],) * len(names)
    shapes = [shape[:-1] + (size,) for size in sizes]
    inner_shapes = [inner_shape[:-1] + (size,) for size in sizes]
    if hx is None:
        return tuple(tg.as_variable(np.zeros(inner, dtype)) for inner in inner_shapes)
    if pair and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
        raise TypeError(f"{owner}: hx must be a pair ({', '.join(names)}), got {type(hx).__name__}")
    if not pair and isinstance(hx, (tuple, list)):
        raise TypeError(f"{owner}: hx must be one array ({names[0]}), got a {type(hx).__name__}")
    states = tuple(tg.as_variable(h) for h in hx) if pair else (tg.as_variable(hx),)
    for name, state, expected in zip(names, states, shapes, strict=True):
        check_dtype(owner, name, state, dtype)
        if state.shape != expected:
            raise tg.ShapeError(f"{owner}: {name} has shape {state.shape}, expected {expected}")
    return tuple(state.reshape(inner) for state, inner in zip(states, inner_shapes, strict=True))


# ----------------------------------------------------------------------------- variants and equations
def set_variant(module, bias, peephole=False, layer_norm=False, reset_after=True, forget_bias=0.0):
    """Check the options beyond PyTorch's (see the module docstring) and set them on ``module``."""
    owner = type(module).__name__
    if not isinstance(forget_bias, numbers.Real) or isinstance(forget_bias, bool):
        raise TypeError(f"{owner}: forget_bias must be a number, got {type(forget_bias).__name__}")
    if forget_bias and not bias:
        raise ValueError(f"{owner}: forget_bias={forget_bias} needs the biases (bias=True)")
    module.peephole = bool(peephole)
    module.layer_norm = bool(layer_norm)
    module.reset_after = bool(reset_after)
    module.forget_bias = float(forget_bias)


def cell_parameters(module, input_size):
    """The parameters of one cell of ``module`` {name: Parameter, or None for an absent bias}, in
    registration order: PyTorch's, then the variant's. An LSTM layer with ``proj_size`` P has
    h of size P: Wₕₕ (4H, P) and the projection weight_hr (P, H), as PyTorch's."""
    hidden_size = module.hidden_size
    proj_size = getattr(module, "proj_size", 0)
    gates = _GATES[module.mode] * hidden_size
    params = {"weight_ih": _uniform((gates, input_size), hidden_size),
              "weight_hh": _uniform((gates, proj_size or hidden_size), hidden_size),
              "bias_ih": _uniform((gates,), hidden_size) if module.bias else None,
              "bias_hh": _uniform((gates,), hidden_size) if module.bias else None}
    if proj_size:
        params["weight_hr"] = _uniform((proj_size, hidden_size), hidden_size)
    if module.forget_bias:
        params["bias_ih"].data[hidden_size:2 * hidden_size] += module.forget_bias  # gates i, f, g, o
    if module.peephole:
        for name in ("weight_ci", "weight_cf", "weight_co"):
            params[name] = _uniform((hidden_size,), hidden_size)
    if module.layer_norm:
        params["ln_weight_ih"] = Parameter(np.ones(gates, np.float32))
        params["ln_weight_hh"] = Parameter(np.ones(gates, np.float32))
        if module.mode == "LSTM":
            params["ln_weight_c"] = Parameter(np.ones(hidden_size, np.float32))
            params["ln_bias_c"] = Parameter(np.zeros(hidden_size, np.float32))
    return params


def reset_like(module, fresh, suffix):
    """Give ``module``'s parameters the values of the ``fresh`` ones {name: Parameter}, in their dtype."""
    for name, param in fresh.items():
        if param is not None:
            own = getattr(module, name + suffix)
            own.data = param.data.astype(own.dtype)


def variant_repr(module):
    """The options beyond PyTorch's that ``module`` uses, as ``extra_repr`` shows them."""
    text = ", peephole=True" if module.peephole else ""
    if module.layer_norm:
        text += ", layer_norm=True"
    if not module.reset_after:
        text += ", reset_after=False"
    if module.forget_bias:
        text += f", forget_bias={module.forget_bias}"
    return text


class _Projection:
    """One side of (some of) a cell's gates: y = x Wᵀ + b, or N(x Wᵀ) ⊙ γ + b with layer
    normalisation, each gate's slice normalised on its own (:func:`gate_norm`)."""

    def __init__(self, weight, bias, gain, gates):
        self.weight, self.bias, self.gain, self.gates = weight, bias, gain, gates

    def gates_slice(self, first, stop):
        """The projection onto the gates [first, stop) only (slices of the parameters, recorded once)."""
        hidden = self.weight.shape[0] // self.gates
        rows = slice(first * hidden, stop * hidden)
        return _Projection(self.weight[rows], None if self.bias is None else self.bias[rows],
                           None if self.gain is None else self.gain[rows], stop - first)

    def __call__(self, x):
        """The projection of x."""
        if self.gain is None:
            return F.linear(x, self.weight, self.bias)
        y = gate_norm(F.linear(x, self.weight), self.gates) * self.gain
        return y if self.bias is None else y + self.bias


class CellEquations:
    """The equations of one cell bound to its parameters: a cell module's, or one layer and
    direction's. A layer's data goes through it one way: :meth:`project_input` of the whole
    sequence (one matmul), then :meth:`step` once per time step.

    ``module`` holds the parameters, named with ``suffix`` (``"_l0"``, ``"_l1_reverse"``, ...).
    ``composed``: run the composed cells, whose gates are Variables (for ``return_all_states``).
    The variants (peepholes, layer normalisation, the reset-before GRU) always run them.
    ``sequence``: (steps, batch) of a layer's loop over a sequence, which adds both biases
    on the input side of all steps at once where they add to the same gates, and for the
    fused cells multiplies by a copy of Wₕₕᵀ laid out for speed.
    """

    def __init__(self, module, suffix="", *, composed=False, sequence=None):
        def param(name):
            return getattr(module, name + suffix, None)

        self.mode = module.mode
        self.fused = module.fused
        gates = _GATES[self.mode]
        bias_ih, bias_hh = param("bias_ih"), param("bias_hh")
        if sequence is not None and bias_hh is not None and self.mode != "GRU":
            # Both biases add to the same gates (not so in a GRU: bₕₙ is multiplied by r):
            # added once, on the input side of all steps, instead of at every step.
            bias_ih, bias_hh = bias_ih + bias_hh, None
        self.input_side = _Projection(param("weight_ih"), bias_ih, param("ln_weight_ih"), gates)
        self.hidden_side = _Projection(param("weight_hh"), bias_hh, param("ln_weight_hh"), gates)
        self.peephole = None
        if module.peephole:
            self.peephole = (param("weight_ci"), param("weight_cf"), param("weight_co"))
        self.cell_norm = None
        if module.layer_norm and self.mode == "LSTM":
            weight, bias = param("ln_weight_c"), param("ln_bias_c")
            self.cell_norm = lambda c: layer_norm(c, c.shape[-1:], weight, bias)
        self.projection = param("weight_hr")  # an LSTM with projections: h' = (o ⊙ tanh c') W_hrᵀ
        self.hidden_n = None
        if not module.reset_after:  # the hidden side of r and z, and that of n, apart
            self.hidden_n = self.hidden_side.gates_slice(2, 3)
            self.hidden_side = self.hidden_side.gates_slice(0, 2)
        variant = (module.peephole or module.layer_norm or not module.reset_after
                   or self.projection is not None)
        self.composed = self.mode in ("LSTM", "GRU") and (variant or composed)
        # BLAS multiplies a batch of rows by Wᵀ laid out in C order up to twice as fast as by the
        # view W.T; the copy pays for itself within a few steps, but not when sampling one row.
        self.weight_t = None
        if not self.composed and sequence is not None and min(sequence) >= 4:
            with tg.no_grad():  # a layout of Wₕₕ, not a node of the graph
                self.weight_t = _TransposedCopy()(self.hidden_side.weight).data

    def project_input(self, x):
        """The input side of the gates, x Wᵢₕᵀ + bᵢₕ, for x of shape (..., input_size): of a
        whole sequence at once in a layer."""
        return self.input_side(x)

    def step(self, input_gates, state, mask=None):
        """(the next state, (h',) or (h', c'); its gates: Variables from the composed cells,
        else None) from one step's input side of the gates and the state (h,) or (h, c).
        ``mask``: variational dropout's mask of h in the hidden-side matmuls (not for a fused
        GRU cell, whose z ⊙ h needs h unmasked).
        """
        h = state[0] if mask is None else state[0] * mask
        if not self.composed:
            return self._fused_step(input_gates, h, state), None
        if self.mode == "LSTM":
            (h, c), gates = lstm_step(input_gates, self.hidden_side(h), state[1], self.peephole,
                                      self.cell_norm)
            return ((h, c) if self.projection is None else (F.linear(h, self.projection), c)), gates
        hidden_n = self.hidden_n
        if hidden_n is not None and mask is not None:
            def hidden_n(reset_h):  # r ⊙ h ⊙ mask
                return self.hidden_n(reset_h * mask)
        return gru_step(input_gates, self.hidden_side(h), state[0], hidden_n)

    def _fused_step(self, input_gates, h, state):
        """The next state from PyTorch's cell: one fused Function (or its composed form if not
        ``fused``), the hidden side computed from ``h``."""
        W, b, options = self.hidden_side.weight, self.hidden_side.bias, {"fused": self.fused,
                                                                        "weight_t": self.weight_t}
        if self.mode == "LSTM":
            return F.lstm_cell(input_gates, h, state[1], W, b, **options)
        if self.mode == "GRU":
            return (F.gru_cell(input_gates, h, W, b, **options),)
        nonlinearity = "tanh" if self.mode == "RNN_TANH" else "relu"
        return (F.rnn_cell(input_gates, h, W, b, nonlinearity, **options),)


def gate_norm(z, gates, eps=1e-5):
    """Each of the ``gates`` equal slices of z (..., gates·H) normalised on its own to zero
    mean and unit variance (layer normalisation without its affine part)."""
    hidden = z.shape[-1] // gates
    split_gates = z.reshape(z.shape[:-1] + (gates, hidden))
    return layer_norm(split_gates, (hidden,), eps=eps).reshape(z.shape)


# ----------------------------------------------------------------------------- cells
class _CellBase(Module):
    """One step of a recurrent cell, with the parameters weight_ih, weight_hh, bias_ih, bias_hh
    (and those of its variant: see the module docstring)."""

    def __init__(self, mode, input_size, hidden_size, bias, fused, **variant):
        super().__init__()
        owner = type(self).__name__
        check_size(owner, "input_size", input_size)
        check_size(owner, "hidden_size", hidden_size)
        set_variant(self, bias, **variant)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        self.fused = bool(fused)
        for name, param in cell_parameters(self, input_size).items():
            self.register_parameter(name, param)

    def reset_parameters(self):
        """Draw every parameter again as at construction (PyTorch's U(-1/√H, 1/√H), the variants')."""
        reset_like(self, cell_parameters(self, self.input_size), "")

    def forward(self, x, hx=None):
        """The next state for x of shape (batch, input_size), or (input_size,) unbatched.

        ``hx`` (zeros if None) and the result have shape (batch, hidden_size), or
        (hidden_size,) unbatched; for LSTMCell both are pairs (h, c).
        """
        owner = type(self).__name__
        dtype = self.weight_ih.dtype
        x = tg.as_variable(x)
        check_dtype(owner, "input", x, dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size or x.size == 0:
            raise tg.ShapeError(f"{owner}: input of shape {x.shape} does not fit; expected "
                                f"(batch, {self.input_size}) or ({self.input_size},)")
        batched = x.ndim == 2
        x = x if batched else x.reshape(1, self.input_size)
        shape = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        names = ("h", "c") if self.mode == "LSTM" else ("h",)
        state = initial_state(owner, hx, names, shape, (x.shape[0], self.hidden_size), dtype)
        equations = CellEquations(self)
        state, _ = equations.step(equations.project_input(x), state)
        state = tuple(s.reshape(shape) for s in state)
        return state if self.mode == "LSTM" else state[0]

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity=relu"  # as PyTorch prints it
        return text + variant_repr(self) + ("" if self.fused else ", fused=False")


class RNNCell(_CellBase):
    """The Elman cell h' = tanh(x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ), or relu for ``nonlinearity='relu'``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *, fused=True):
        super().__init__(rnn_mode("RNNCell", nonlinearity), input_size, hidden_size, bias, fused)
        self.nonlinearity = nonlinearity


class LSTMCell(_CellBase):
    """The LSTM cell: with [zᵢ, z_f, z_g, z_o] = x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ,

        i = σ(zᵢ),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
        c' = f ⊙ c + i ⊙ g,      h' = o ⊙ tanh(c')

    ``forward(x, (h, c))`` returns (h', c'). ``peephole``, ``layer_norm`` and ``forget_bias``
    select the variants of the module docstring (peepholes and layer normalisation run the
    composed cell).
    """

    def __init__(self, input_size, hidden_size, bias=True, *, peephole=False, layer_norm=False,
                 forget_bias=0.0, fused=True):
        super().__init__("LSTM", input_size, hidden_size, bias, fused, peephole=peephole,
                         layer_norm=layer_norm, forget_bias=forget_bias)


class GRUCell(_CellBase):
    """PyTorch's GRU cell: with [aᵣ, a_z, aₙ] = x Wᵢₕᵀ + bᵢₕ and [bᵣ, b_z, bₙ] = h Wₕₕᵀ + bₕₕ,

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  n = tanh(aₙ + r ⊙ bₙ)
        h' = (1 - z) ⊙ n + z ⊙ h

    ``reset_after=False`` applies r before the matmul, n = tanh(aₙ + (r ⊙ h) Wₕₙᵀ + bₕₙ)
    (composed cell); ``layer_norm`` normalises the projections (see the module docstring).
    """

    def __init__(self, input_size, hidden_size, bias=True, *, reset_after=True, layer_norm=False, fused=True):
        super().__init__("GRU", input_size, hidden_size, bias, fused, reset_after=reset_after,
                         layer_norm=layer_norm)
