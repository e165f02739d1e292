"""Recurrent cells and layers: RNN, LSTM and GRU with PyTorch's parameters and equations, and variants.

Parameter names and shapes, gate order (LSTM i, f, g, o; GRU r, z, n), equations and the
initialisation U(-1/√H, 1/√H) are PyTorch's, so state dicts move between the two. A layer
projects the input of the whole sequence onto all gates in one matmul before its loop over
time; each step is then one fused cell Function (``tensorgrad.functions.lstm_cell`` and
its siblings), which adds the hidden side h Wₕₕᵀ + bₕₕ, one matmul, and computes the next
state.

Options PyTorch does not have, all off by default (the modules are then PyTorch's exactly):

- ``peephole=True`` (LSTM): the gates see the cell state (see :func:`nn.cell_variants.lstm_step`),
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
- ``variational_dropout=p`` (layers): one dropout mask per sequence on each layer's input
  and one on its hidden state, the same at every step (Gal & Ghahramani, 2016), in training.
- ``forward(..., return_all_states=True)`` (layers): every step's hidden and cell states
  and gates, as :class:`RecurrentStates`.

Peepholes, layer normalisation, the reset-before GRU and ``return_all_states``
run the composed cells of :mod:`nn.cell_variants` (primitive Functions), slower than the
fused cells, and so does variational dropout in a GRU (its z ⊙ h needs h without the mask
that its hidden side multiplies); variational dropout keeps the fused RNN and LSTM cells.
"""

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from nn import init
from nn.cell_variants import GRU_GATES, LSTM_GATES, gate_norm, gru_step, lstm_step
from nn.layers import layer_norm
from nn.module import Module, Parameter
from tensorgrad.steps import StepArrays

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_GATE_NAMES = {"RNN_TANH": (), "RNN_RELU": (), "LSTM": LSTM_GATES, "GRU": GRU_GATES}


def _fused_step(mode, input_gates, h, state, weight_hh, bias_hh, fused, weight_t=None, step=None):
    """The next state, (h,) or (h, c), of a ``mode`` cell: one cell Function from the input
    side of the gates, the h its hidden side multiplies, the state and Wₕₕ, bₕₕ."""
    layout = {"weight_t": weight_t, "step": step}
    if mode == "LSTM":
        return F.lstm_cell(input_gates, h, state[1], weight_hh, bias_hh, fused=fused, **layout)
    if mode == "GRU":
        return (F.gru_cell(input_gates, h, weight_hh, bias_hh, fused=fused, **layout),)
    nonlinearity = "tanh" if mode == "RNN_TANH" else "relu"
    return (F.rnn_cell(input_gates, h, weight_hh, bias_hh, nonlinearity, fused=fused, **layout),)


def _rnn_mode(owner, nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{owner}: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def _check_size(owner, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an integer, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be greater than zero, got {value}")


def _check_probability(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1], got {value!r}")


def _uniform(shape, hidden_size):
    """A float32 Parameter drawn from PyTorch's U(-1/√H, 1/√H)."""
    return Parameter(init.uniform(shape, 1.0 / math.sqrt(hidden_size)))


def _check_dtype(owner, what, value, dtype):
    if value.dtype != dtype:
        raise TypeError(f"{owner}: {what} has dtype {value.dtype}, but the parameters are {dtype}; "
                        "cast the one or the other (e.g. model.double())")


def _initial_state(owner, hx, names, shape, inner_shape, dtype):
    """The state tuple, (h,) or (h, c) as ``names`` says, from ``hx`` of ``shape`` (zeros for None),
    reshaped to ``inner_shape``."""
    pair = len(names) == 2
    if hx is None:
        return (tg.as_variable(np.zeros(inner_shape, dtype)),) * len(names)
    if pair and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
        raise TypeError(f"{owner}: hx must be a pair ({', '.join(names)}), got {type(hx).__name__}")
    if not pair and isinstance(hx, (tuple, list)):
        raise TypeError(f"{owner}: hx must be one array ({names[0]}), got a {type(hx).__name__}")
    states = tuple(tg.as_variable(h) for h in hx) if pair else (tg.as_variable(hx),)
    for name, state in zip(names, states, strict=True):
        _check_dtype(owner, name, state, dtype)
        if state.shape != shape:
            raise tg.ShapeError(f"{owner}: {name} has shape {state.shape}, expected {shape}")
    return tuple(state.reshape(inner_shape) for state in states)


# ----------------------------------------------------------------------------- variants and equations
def _set_variant(module, bias, peephole=False, layer_norm=False, reset_after=True, forget_bias=0.0):
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


def _cell_parameters(module, input_size):
    """The parameters of one cell of ``module`` {name: Parameter, or None for an absent bias}, in
    registration order: PyTorch's, then the variant's."""
    hidden_size = module.hidden_size
    gates = _GATES[module.mode] * hidden_size
    params = {"weight_ih": _uniform((gates, input_size), hidden_size),
              "weight_hh": _uniform((gates, hidden_size), hidden_size),
              "bias_ih": _uniform((gates,), hidden_size) if module.bias else None,
              "bias_hh": _uniform((gates,), hidden_size) if module.bias else None}
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


def _variant_repr(module):
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
    normalisation, each gate's slice normalised on its own (:func:`nn.cell_variants.gate_norm`)."""

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


class _Equations:
    """The equations of one cell with its parameters: a cell module's, or one layer and direction's.

    ``module`` holds the parameters, named with ``suffix`` (``"_l0"``, ``"_l1_reverse"``, ...).
    ``composed``: run the composed cells, whose gates are Variables (for ``return_all_states``).
    The variants (peepholes, layer normalisation, the reset-before GRU) always run them.
    ``sequence``: (steps, batch) of a layer's loop over a sequence, which adds both biases
    on the input side of all steps at once where they add to the same gates, and for the
    fused path multiplies by a copy of Wₕₕᵀ laid out for speed.
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
        self.hidden_n = None
        if not module.reset_after:  # the hidden side of r and z, and that of n, apart
            self.hidden_n = self.hidden_side.gates_slice(2, 3)
            self.hidden_side = self.hidden_side.gates_slice(0, 2)
        variant = module.peephole or module.layer_norm or not module.reset_after
        self.composed = self.mode in ("LSTM", "GRU") and (variant or composed)
        # BLAS multiplies a batch of rows by Wᵀ laid out in C order up to twice as fast as by the
        # view W.T; the copy pays for itself within a few steps, but not when sampling one row.
        self.weight_t = None
        if not self.composed and sequence is not None and min(sequence) >= 4:
            self.weight_t = np.ascontiguousarray(self.hidden_side.weight.data.T)

    def step(self, input_gates, state, mask=None, step=None):
        """(the next state, its gates: Variables from the composed cells, else None) from one
        step's input side and the state. ``mask``: variational dropout's mask of h in the
        hidden-side matmuls (not for a fused GRU cell, whose z ⊙ h needs h unmasked);
        ``step``: the fused cell's place in a sequence (see ``F.lstm_cell``).
        """
        h = state[0] if mask is None else state[0] * mask
        if not self.composed:
            hidden = self.hidden_side
            return _fused_step(self.mode, input_gates, h, state, hidden.weight, hidden.bias, self.fused,
                               self.weight_t, step), None
        if self.mode == "LSTM":
            return lstm_step(input_gates, self.hidden_side(h), state[1], self.peephole, self.cell_norm)
        hidden_n = self.hidden_n
        if hidden_n is not None and mask is not None:
            def hidden_n(reset_h):  # r ⊙ h ⊙ mask
                return self.hidden_n(reset_h * mask)
        return gru_step(input_gates, self.hidden_side(h), state[0], hidden_n)


# ----------------------------------------------------------------------------- cells
class _CellBase(Module):
    """One step of a recurrent cell, with the parameters weight_ih, weight_hh, bias_ih, bias_hh
    (and those of its variant: see the module docstring)."""

    def __init__(self, mode, input_size, hidden_size, bias, fused, **variant):
        super().__init__()
        owner = type(self).__name__
        _check_size(owner, "input_size", input_size)
        _check_size(owner, "hidden_size", hidden_size)
        _set_variant(self, bias, **variant)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        self.fused = bool(fused)
        for name, param in _cell_parameters(self, input_size).items():
            self.register_parameter(name, param)

    def forward(self, x, hx=None):
        """The next state for x of shape (batch, input_size), or (input_size,) unbatched.

        ``hx`` (zeros if None) and the result have shape (batch, hidden_size), or
        (hidden_size,) unbatched; for LSTMCell both are pairs (h, c).
        """
        owner = type(self).__name__
        dtype = self.weight_ih.dtype
        x = tg.as_variable(x)
        _check_dtype(owner, "input", x, dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size or x.size == 0:
            raise tg.ShapeError(f"{owner}: input of shape {x.shape} does not fit; expected "
                                f"(batch, {self.input_size}) or ({self.input_size},)")
        batched = x.ndim == 2
        x = x if batched else x.reshape(1, self.input_size)
        shape = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        names = ("h", "c") if self.mode == "LSTM" else ("h",)
        state = _initial_state(owner, hx, names, shape, (x.shape[0], self.hidden_size), dtype)
        equations = _Equations(self)
        state, _ = equations.step(equations.input_side(x), state)
        state = tuple(s.reshape(shape) for s in state)
        return state if self.mode == "LSTM" else state[0]

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        return text + _variant_repr(self) + ("" if self.fused else ", fused=False")


class RNNCell(_CellBase):
    """The Elman cell h' = tanh(x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ), or relu for ``nonlinearity='relu'``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *, fused=True):
        super().__init__(_rnn_mode("RNNCell", nonlinearity), input_size, hidden_size, bias, fused)
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


# ----------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class RecurrentStates:
    """Every step's state of a recurrent layer: the third result of ``forward(x, return_all_states=True)``.

    With k = layer·D + direction (D = 2 if bidirectional, else 1; the order of h_n) and t the
    time step (the input's time order, for either direction):

    - ``h``: every hₜ, a Variable (num_layers·D, T, B, H), or (num_layers·D, B, T, H) with
      ``batch_first``, (num_layers·D, T, H) unbatched; zero past a sequence's end, like the
      output. The last layer's are the output's halves; without ``lengths``, the last step
      of a forward direction (the first of a reverse one) is its h_n.
    - ``c``: every cₜ of an LSTM, shaped like ``h``; None otherwise.
    - ``gates``: the gate activations {name: Variable shaped like ``h``}, LSTM i, f, g, o and
      GRU r, z, n; empty for an RNN. Past a sequence's end they are those computed there
      (and not used: the state is kept).
    - ``steps``: ``steps[k][t]``, the state after step t, (h,) or (h, c), each (B, H) (B = 1
      unbatched): the very Variables the recurrence passes on, to hook
      (``Variable.register_hook``) or differentiate with ``tg.grad``.
    - ``initial``: ``initial[k]``, the state direction k starts from; ``previous(k, t)``
      gives the state step t starts from.

    The layer records these steps with the composed cells (primitive Functions), so that
    every gate is a Variable and the gradient at cₜ is all of ∂L/∂cₜ (through hₜ too).
    """

    h: tg.Variable
    c: tg.Variable | None
    gates: dict
    steps: tuple
    initial: tuple
    directions: int

    def previous(self, k, t):
        """The state step t of direction k starts from: after step t - 1 (t + 1 in reverse), or initial."""
        reverse = k % self.directions == 1
        before = t + 1 if reverse else t - 1
        return self.steps[k][before] if 0 <= before < len(self.steps[k]) else self.initial[k]


class _RNNBase(Module):
    """Stacked, optionally bidirectional recurrent layers with PyTorch's flat parameters.

    Layer k, direction d has weight_ih_l{k}{_reverse} (gates·H, in), weight_hh_l{k}{_reverse}
    (gates·H, H) and, with ``bias``, bias_ih_l{k}{_reverse} and bias_hh_l{k}{_reverse} (then
    the variant's, with the same suffix); the input of layer k > 0 is the output of layer
    k - 1 (both directions concatenated), passed through dropout with probability
    ``dropout`` in training mode.
    """

    def __init__(self, mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                 bidirectional, fused, variational_dropout=0.0, **variant):
        super().__init__()
        owner = type(self).__name__
        _check_size(owner, "input_size", input_size)
        _check_size(owner, "hidden_size", hidden_size)
        _check_size(owner, "num_layers", num_layers)
        _check_probability(owner, "dropout", dropout)
        _check_probability(owner, "variational_dropout", variational_dropout)
        _set_variant(self, bias, **variant)
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{owner}: dropout acts between recurrent layers, so dropout={dropout} does "
                          "nothing with num_layers=1", stacklevel=3)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.fused = bool(fused)
        self.variational_dropout = float(variational_dropout)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self._directions
            for reverse in self._reverse_flags:
                suffix = self._suffix(layer, reverse)
                for name, param in _cell_parameters(self, layer_input).items():
                    if param is not None:
                        self.register_parameter(name + suffix, param)

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    @property
    def _reverse_flags(self):
        return (False, True) if self.bidirectional else (False,)

    @staticmethod
    def _suffix(layer, reverse):
        return f"_l{layer}" + ("_reverse" if reverse else "")

    def forward(self, x, hx=None, lengths=None, *, return_all_states=False):
        """Run the layers over a sequence; return ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``).

        x: (T, B, input_size), (B, T, input_size) with ``batch_first``, or (T, input_size)
        unbatched. hx: h_0 (LSTM: the pair (h_0, c_0)) of shape (num_layers·D, B, hidden_size),
        or (num_layers·D, hidden_size) unbatched; zeros if None. D is 2 if bidirectional, else 1.
        output: (T, B, D·hidden_size) (batch first or unbatched like x), h_n and c_n like h_0.

        ``lengths`` (one int in 1..T per sequence of a padded batch): outputs past a
        sequence's end are zero and h_n, c_n hold its state at its last valid step, as PyTorch
        gives for a packed sequence; the reverse direction starts at that last valid step.

        ``return_all_states=True`` adds a third result, the :class:`RecurrentStates` of every
        layer, direction and step (recorded with the composed cells: slower).
        """
        owner = type(self).__name__
        dtype = self.weight_ih_l0.dtype
        x = tg.as_variable(x)
        _check_dtype(owner, "input", x, dtype)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size or x.size == 0:
            layout = "(batch, seq_len" if self.batch_first else "(seq_len, batch"
            raise tg.ShapeError(f"{owner}: input of shape {x.shape} does not fit; expected "
                                f"{layout}, {self.input_size}) or (seq_len, {self.input_size})")
        batched = x.ndim == 3
        if not batched:
            x = x.reshape(x.shape[0], 1, self.input_size)
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        steps, batch = x.shape[:2]
        valid = self._valid_steps(lengths, steps, batch)
        stacked = self.num_layers * self._directions
        shape = (stacked, batch, self.hidden_size) if batched else (stacked, self.hidden_size)
        names = ("h_0", "c_0") if self.mode == "LSTM" else ("h_0",)
        states = _initial_state(owner, hx, names, shape, (stacked, batch, self.hidden_size), dtype)
        states = list(zip(*(F.unbind(s) for s in states), strict=True))  # one per layer and direction

        finals, runs = [], []
        output = x
        for layer in range(self.num_layers):
            if layer:
                output = F.dropout(output, self.dropout, self.training)
            outputs = []
            for reverse in self._reverse_flags:
                run = self._run(output, states[len(finals)], layer, reverse, valid, return_all_states)
                outputs.append(run.output)
                finals.append(run.final)
                runs.append(run)
            output = F.concat(outputs, axis=2) if self.bidirectional else outputs[0]
        final = [F.stack(s) for s in zip(*finals, strict=True)]  # h_n (and c_n)

        if not batched:
            output = output.reshape(steps, -1)
            final = [s.reshape(shape) for s in final]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        final = tuple(final) if self.mode == "LSTM" else final[0]
        if not return_all_states:
            return output, final
        return output, final, self._all_states(runs, states, batched)

    def _valid_steps(self, lengths, steps, batch):
        """None, or the mask (T, B, 1) of the steps inside each sequence of a padded batch."""
        if lengths is None:
            return None
        owner = type(self).__name__
        lengths = np.asarray(getattr(lengths, "data", lengths))
        if lengths.ndim != 1 or (lengths.size and lengths.dtype.kind not in "iu"):
            raise TypeError(f"{owner}: lengths must be a 1-d sequence of integers, got shape "
                            f"{lengths.shape} and dtype {lengths.dtype}")
        if len(lengths) != batch:
            raise ValueError(f"{owner}: {len(lengths)} lengths for a batch of {batch} sequences")
        if lengths.min() < 1 or lengths.max() > steps:
            raise ValueError(f"{owner}: lengths must lie in 1..{steps} (the padded sequence length), "
                             f"got {lengths.tolist()}")
        if (lengths == steps).all():
            return None
        return (np.arange(steps)[:, None] < lengths)[:, :, None]

    def _variational_masks(self, batch, input_size, dtype):
        """The masks (x, h) of variational dropout for one layer and direction, or (None, None)."""
        p = self.variational_dropout
        if not (self.training and p):
            return None, None
        return (F.dropout_mask((batch, input_size), p, dtype),
                F.dropout_mask((batch, self.hidden_size), p, dtype))

    def _run(self, x, state, layer, reverse, valid, all_states):
        """One direction of one layer over the sequence x (T, B, in): a :class:`_Run`.

        ``all_states``: the gates of every step are wanted as Variables (composed cells).
        """
        name = f"{type(self).__name__.lower()}.l{layer}" + (".reverse" if reverse else "")
        steps, batch = x.shape[:2]
        with tg.scope(name):
            x_mask, h_mask = self._variational_masks(batch, x.shape[2], x.dtype)
            composed = all_states or (h_mask is not None and self.mode == "GRU")
            equations = _Equations(self, self._suffix(layer, reverse), composed=composed,
                                   sequence=(steps, batch))
            input_gates = F.unbind(equations.input_side(x if x_mask is None else x * x_mask))
            # Recorded, the steps write into arrays laid out for the whole sequence (kept for
            # backward anyway); otherwise each step's arrays are freed as soon as it is done.
            hidden = equations.hidden_side
            recorded = tg.is_grad_enabled() and any(
                v is not None and v.requires_grad
                for v in (input_gates[0], hidden.weight, hidden.bias, *state))
            arrays = StepArrays(steps) if recorded else None
            run = _Run(steps, valid)
            for t in reversed(range(steps)) if reverse else range(steps):
                step = None if arrays is None else arrays.step(t)
                with tg.scope(f"t={t}"):
                    new, gates = equations.step(input_gates[t], state, h_mask, step)
                    if valid is not None and not valid[t].all():
                        # A sequence past its end keeps its state: h_n is the state at its last
                        # step, and the reverse direction starts there from h_0.
                        new = tuple(F.where(valid[t], n, s) for n, s in zip(new, state, strict=True))
                    state = new
                    run.states[t], run.gates[t] = state, gates
            run.final = state
            run.output = run.stacked(0)
        return run

    def _all_states(self, runs, initial, batched):
        """The :class:`RecurrentStates` of the ``runs`` of every layer and direction."""
        def gather(per_run):
            stacked = F.stack(per_run)  # (L·D, T, B, H)
            if not batched:
                return stacked.reshape(stacked.shape[:2] + stacked.shape[3:])
            return stacked.transpose(0, 2, 1, 3) if self.batch_first else stacked

        return RecurrentStates(
            h=gather([run.output for run in runs]),
            c=gather([run.stacked(1) for run in runs]) if self.mode == "LSTM" else None,
            gates={name: gather([F.stack([gates[i] for gates in run.gates]) for run in runs])
                   for i, name in enumerate(_GATE_NAMES[self.mode])},
            steps=tuple(tuple(run.states) for run in runs),
            initial=tuple(initial),
            directions=self._directions)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        text += _variant_repr(self)
        if self.variational_dropout:
            text += f", variational_dropout={self.variational_dropout}"
        return text + ("" if self.fused else ", fused=False")


class _Run:
    """One direction of one layer over a sequence: each step's state and gates, the final state and output."""

    def __init__(self, steps, valid):
        self.valid = valid
        self.states = [None] * steps  # the state after each step, (h,) or (h, c)
        self.gates = [None] * steps  # each step's gates, when recorded
        self.final = self.output = None

    def stacked(self, index):
        """Every step's h (index 0) or c (1), (T, B, H), zero past each sequence's end."""
        stacked = F.stack([state[index] for state in self.states])
        return stacked if self.valid is None else F.where(self.valid, stacked, 0.0)


class RNN(_RNNBase):
    """Elman RNN layers: hₜ = tanh(xₜ Wᵢₕᵀ + bᵢₕ + hₜ₋₁ Wₕₕᵀ + bₕₕ), or relu.

    See ``forward`` for the shapes, initial states and ``lengths``; ``variational_dropout``
    in the module docstring.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, variational_dropout=0.0, fused=True):
        super().__init__(_rnn_mode("RNN", nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, fused, variational_dropout)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """LSTM layers: with [zᵢ, z_f, z_g, z_o] = xₜ Wᵢₕᵀ + bᵢₕ + hₜ₋₁ Wₕₕᵀ + bₕₕ,

        i = σ(zᵢ),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
        cₜ = f ⊙ cₜ₋₁ + i ⊙ g,   hₜ = o ⊙ tanh(cₜ)

    ``forward(x, (h_0, c_0))`` returns ``(output, (h_n, c_n))``; see ``forward`` for shapes.
    ``peephole``, ``layer_norm``, ``forget_bias`` and ``variational_dropout``: see the module
    docstring.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, peephole=False, layer_norm=False, forget_bias=0.0,
                 variational_dropout=0.0, fused=True):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, fused, variational_dropout, peephole=peephole, layer_norm=layer_norm,
                         forget_bias=forget_bias)


class GRU(_RNNBase):
    """GRU layers (PyTorch's equations): with [aᵣ, a_z, aₙ] = xₜ Wᵢₕᵀ + bᵢₕ and
    [bᵣ, b_z, bₙ] = hₜ₋₁ Wₕₕᵀ + bₕₕ,

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  n = tanh(aₙ + r ⊙ bₙ)
        hₜ = (1 - z) ⊙ n + z ⊙ hₜ₋₁

    See ``forward`` for the shapes, initial states and ``lengths``; ``reset_after``,
    ``layer_norm`` and ``variational_dropout`` in the module docstring.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, reset_after=True, layer_norm=False,
                 variational_dropout=0.0, fused=True):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, fused, variational_dropout, reset_after=reset_after,
                         layer_norm=layer_norm)
