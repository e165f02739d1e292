"""Recurrent cells and layers: RNN, LSTM and GRU with PyTorch's parameters and equations.

Parameter names and shapes, gate order (LSTM i, f, g, o; GRU r, z, n), equations and the
initialisation U(-1/√H, 1/√H) are PyTorch's, so state dicts move between the two. A step
computes all gates of its hidden side in one matmul and hands them, with the input side,
to one fused cell Function (``tensorgrad.functions.lstm_cell`` and its siblings); a layer
projects the input of the whole sequence in one matmul before its loop over time. The steps
write into arrays laid out for the whole sequence (``tensorgrad.steps``), so that the
outputs are stacked, and the weights' gradients summed over the steps, without copies.
"""

import math
import numbers
import warnings

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from nn import init
from nn.module import Module, Parameter
from tensorgrad.steps import StepArrays

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _step(mode, input_gates, hidden_gates, state, fused, step=None):
    """The next state, (h,) or (h, c), of a ``mode`` cell from both sides of its gates."""
    if mode == "LSTM":
        return F.lstm_cell(input_gates, hidden_gates, state[1], fused=fused, step=step)
    if mode == "GRU":
        return (F.gru_cell(input_gates, hidden_gates, state[0], fused=fused, step=step),)
    nonlinearity = "tanh" if mode == "RNN_TANH" else "relu"
    return (F.rnn_cell(input_gates, hidden_gates, nonlinearity, fused=fused, step=step),)


def _rnn_mode(owner, nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{owner}: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def _check_size(owner, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an integer, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be greater than zero, got {value}")


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


# ----------------------------------------------------------------------------- cells
class _CellBase(Module):
    """One step of a recurrent cell, with the parameters weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, mode, input_size, hidden_size, bias, fused):
        super().__init__()
        owner = type(self).__name__
        _check_size(owner, "input_size", input_size)
        _check_size(owner, "hidden_size", hidden_size)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        self.fused = bool(fused)
        gates = _GATES[mode] * hidden_size
        self.weight_ih = _uniform((gates, input_size), hidden_size)
        self.weight_hh = _uniform((gates, hidden_size), hidden_size)
        self.register_parameter("bias_ih", _uniform((gates,), hidden_size) if bias else None)
        self.register_parameter("bias_hh", _uniform((gates,), hidden_size) if bias else None)

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
        input_gates = F.linear(x, self.weight_ih, self.bias_ih)
        hidden_gates = F.linear(state[0], self.weight_hh, self.bias_hh)
        state = _step(self.mode, input_gates, hidden_gates, state, self.fused)
        state = tuple(s.reshape(shape) for s in state)
        return state if self.mode == "LSTM" else state[0]

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        return text + ("" if self.fused else ", fused=False")


class RNNCell(_CellBase):
    """The Elman cell h' = tanh(x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ), or relu for ``nonlinearity='relu'``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *, fused=True):
        super().__init__(_rnn_mode("RNNCell", nonlinearity), input_size, hidden_size, bias, fused)
        self.nonlinearity = nonlinearity


class LSTMCell(_CellBase):
    """The LSTM cell: with [zᵢ, z_f, z_g, z_o] = x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ,

        i = σ(zᵢ),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
        c' = f ⊙ c + i ⊙ g,      h' = o ⊙ tanh(c')

    ``forward(x, (h, c))`` returns (h', c').
    """

    def __init__(self, input_size, hidden_size, bias=True, *, fused=True):
        super().__init__("LSTM", input_size, hidden_size, bias, fused)


class GRUCell(_CellBase):
    """PyTorch's GRU cell: with [aᵣ, a_z, aₙ] = x Wᵢₕᵀ + bᵢₕ and [bᵣ, b_z, bₙ] = h Wₕₕᵀ + bₕₕ,

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  n = tanh(aₙ + r ⊙ bₙ)
        h' = (1 - z) ⊙ n + z ⊙ h
    """

    def __init__(self, input_size, hidden_size, bias=True, *, fused=True):
        super().__init__("GRU", input_size, hidden_size, bias, fused)


# ----------------------------------------------------------------------------- layers
class _RNNBase(Module):
    """Stacked, optionally bidirectional recurrent layers with PyTorch's flat parameters.

    Layer k, direction d has weight_ih_l{k}{_reverse} (gates·H, in), weight_hh_l{k}{_reverse}
    (gates·H, H) and, with ``bias``, bias_ih_l{k}{_reverse} and bias_hh_l{k}{_reverse}; the
    input of layer k > 0 is the output of layer k - 1 (both directions concatenated), passed
    through dropout with probability ``dropout`` in training mode.
    """

    def __init__(self, mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                 bidirectional, fused):
        super().__init__()
        owner = type(self).__name__
        _check_size(owner, "input_size", input_size)
        _check_size(owner, "hidden_size", hidden_size)
        _check_size(owner, "num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError(f"{owner}: dropout must be a number in [0, 1], got {dropout!r}")
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
        gates = _GATES[mode] * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self._directions
            for reverse in self._reverse_flags:
                suffix = self._suffix(layer, reverse)
                self.register_parameter("weight_ih" + suffix, _uniform((gates, layer_input), hidden_size))
                self.register_parameter("weight_hh" + suffix, _uniform((gates, hidden_size), hidden_size))
                if bias:
                    self.register_parameter("bias_ih" + suffix, _uniform((gates,), hidden_size))
                    self.register_parameter("bias_hh" + suffix, _uniform((gates,), hidden_size))

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    @property
    def _reverse_flags(self):
        return (False, True) if self.bidirectional else (False,)

    @staticmethod
    def _suffix(layer, reverse):
        return f"_l{layer}" + ("_reverse" if reverse else "")

    def forward(self, x, hx=None, lengths=None):
        """Run the layers over a sequence; return ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``).

        x: (T, B, input_size), (B, T, input_size) with ``batch_first``, or (T, input_size)
        unbatched. hx: h_0 (LSTM: the pair (h_0, c_0)) of shape (num_layers·D, B, hidden_size),
        or (num_layers·D, hidden_size) unbatched; zeros if None. D is 2 if bidirectional, else 1.
        output: (T, B, D·hidden_size) (batch first or unbatched like x), h_n and c_n like h_0.

        ``lengths`` (one int in 1..T per sequence of a padded batch): outputs past a
        sequence's end are zero and h_n, c_n hold its state at its last valid step, as PyTorch
        gives for a packed sequence; the reverse direction starts at that last valid step.
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

        finals = []
        output = x
        for layer in range(self.num_layers):
            if layer:
                output = F.dropout(output, self.dropout, self.training)
            outputs = []
            for reverse in self._reverse_flags:
                out, state = self._run(output, states[len(finals)], layer, reverse, valid)
                outputs.append(out)
                finals.append(state)
            output = F.concat(outputs, axis=2) if self.bidirectional else outputs[0]
        final = [F.stack(s) for s in zip(*finals, strict=True)]  # h_n (and c_n)

        if not batched:
            output = output.reshape(steps, -1)
            final = [s.reshape(shape) for s in final]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return output, (tuple(final) if self.mode == "LSTM" else final[0])

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

    def _run(self, x, state, layer, reverse, valid):
        """One direction of one layer over the sequence x (T, B, in): (output, final state)."""
        suffix = self._suffix(layer, reverse)
        weight_hh, bias_hh = getattr(self, "weight_hh" + suffix), getattr(self, "bias_hh" + suffix, None)
        name = f"{type(self).__name__.lower()}.l{layer}" + (".reverse" if reverse else "")
        bias_ih = getattr(self, "bias_ih" + suffix, None)
        steps, batch = x.shape[:2]
        # BLAS multiplies a batch of rows by Wᵀ laid out in C order up to twice as fast as by the
        # view W.T; the copy pays for itself within a few steps, but not when sampling one row.
        weight_hh_t = np.ascontiguousarray(weight_hh.data.T) if steps >= 4 and batch >= 4 else None
        with tg.scope(name):
            if bias_hh is not None and self.mode != "GRU":
                # Both biases add to the same gates (not so in a GRU: bₕₙ is multiplied by r):
                # added once, on the input side of all steps, instead of at every step.
                bias_ih, bias_hh = bias_ih + bias_hh, None
            input_gates = F.unbind(F.linear(x, getattr(self, "weight_ih" + suffix), bias_ih))
            # Recorded, the steps write into arrays laid out for the whole sequence (kept for
            # backward anyway); otherwise each step's arrays are freed as soon as it is done.
            recorded = tg.is_grad_enabled() and any(
                v is not None and v.requires_grad for v in (input_gates[0], weight_hh, bias_hh, *state))
            arrays = StepArrays(steps) if recorded else None
            outputs = [None] * steps
            for t in reversed(range(steps)) if reverse else range(steps):
                step = None if arrays is None else arrays.step(t)
                with tg.scope(f"t={t}"):
                    hidden_gates = F.linear(state[0], weight_hh, bias_hh, weight_t=weight_hh_t, step=step)
                    new = _step(self.mode, input_gates[t], hidden_gates, state, self.fused, step)
                    if valid is not None and not valid[t].all():
                        # A sequence past its end keeps its state: h_n is the state at its last
                        # step, and the reverse direction starts there from h_0.
                        new = tuple(F.where(valid[t], n, s) for n, s in zip(new, state, strict=True))
                    state = new
                    outputs[t] = state[0]
            output = F.stack(outputs)
            if valid is not None:
                output = F.where(valid, output, 0.0)
        return output, state

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
        return text + ("" if self.fused else ", fused=False")


class RNN(_RNNBase):
    """Elman RNN layers: hₜ = tanh(xₜ Wᵢₕᵀ + bᵢₕ + hₜ₋₁ Wₕₕᵀ + bₕₕ), or relu.

    See ``forward`` for the shapes, initial states and ``lengths``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, fused=True):
        super().__init__(_rnn_mode("RNN", nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, fused)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """LSTM layers: with [zᵢ, z_f, z_g, z_o] = xₜ Wᵢₕᵀ + bᵢₕ + hₜ₋₁ Wₕₕᵀ + bₕₕ,

        i = σ(zᵢ),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
        cₜ = f ⊙ cₜ₋₁ + i ⊙ g,   hₜ = o ⊙ tanh(cₜ)

    ``forward(x, (h_0, c_0))`` returns ``(output, (h_n, c_n))``; see ``forward`` for shapes.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, fused=True):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, fused)


class GRU(_RNNBase):
    """GRU layers (PyTorch's equations): with [aᵣ, a_z, aₙ] = xₜ Wᵢₕᵀ + bᵢₕ and
    [bᵣ, b_z, bₙ] = hₜ₋₁ Wₕₕᵀ + bₕₕ,

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  n = tanh(aₙ + r ⊙ bₙ)
        hₜ = (1 - z) ⊙ n + z ⊙ hₜ₋₁

    See ``forward`` for the shapes, initial states and ``lengths``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, fused=True):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, fused)
