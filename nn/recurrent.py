"""Recurrent layers: RNN, LSTM and GRU over sequences, with PyTorch's flat parameters and semantics.

A layer runs the cell equations of :mod:`nn.cells` over time: see there for those of one
step, the parameters, their initialisation, and the options ``peephole``, ``layer_norm``,
``reset_after`` and ``forget_bias``, which the layers take too. Layer k, direction d holds
one cell's parameters, suffixed ``_l{k}`` (``_l{k}_reverse``) as in PyTorch, so state dicts
move between the two. The data of one layer and direction goes one way, through the
public :class:`nn.cells.CellEquations` of its cell: the input of the whole sequence is
projected onto all gates in one matmul (``project_input``); then each time step is one
``step``, one fused cell Function (``tensorgrad.functions.lstm_cell`` and its siblings)
that adds the hidden side h Wₕₕᵀ + bₕₕ, one matmul, and computes the next state, recorded
in the scope ``lstm.l0/t=3`` (layer 0, step 3); the steps' h are stacked into the output.

``bidirectional=True`` runs a second direction from the last step back to the first and
concatenates the two outputs; ``lengths`` gives the lengths of the sequences of a padded
batch, as a packed sequence does in PyTorch (see :meth:`_RNNBase.forward`).

Options PyTorch does not have, all off by default (the layers are then PyTorch's exactly):

- ``variational_dropout=p``: one dropout mask per sequence on each layer's input and one
  on its hidden state, the same at every step (Gal & Ghahramani, 2016), in training.
- ``forward(..., return_all_states=True)``: every step's hidden and cell states and
  gates, as :class:`RecurrentStates`.

Like the variants of :mod:`nn.cells`, ``return_all_states`` runs the composed cells of
:mod:`tensorgrad.functions.cells` (primitive Functions), slower than the fused cells, and so does
variational dropout in a GRU (its z ⊙ h needs h without the mask that its hidden side
multiplies); variational dropout keeps the fused RNN and LSTM cells.
"""

import warnings
from dataclasses import dataclass

import tensorgrad as tg
import tensorgrad.functions as F
from nn.cells import (
    GATE_NAMES,
    CellEquations,
    cell_parameters,
    initial_state,
    reset_like,
    rnn_mode,
    set_variant,
    variant_repr,
)
from nn.checks import check_dtype, check_probability, check_size
from nn.module import Module
from nn.utils.rnn import PackedSequence, run_packed, valid_steps


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
                 bidirectional, fused, variational_dropout=0.0, proj_size=0, **variant):
        super().__init__()
        owner = type(self).__name__
        check_size(owner, "input_size", input_size)
        check_size(owner, "hidden_size", hidden_size)
        check_size(owner, "num_layers", num_layers)
        check_probability(owner, "dropout", dropout)
        check_probability(owner, "variational_dropout", variational_dropout)
        set_variant(self, bias, **variant)
        _check_proj_size(owner, proj_size, hidden_size, variant)
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
        self.proj_size = proj_size
        for layer, suffix in self._cells():
            for name, param in cell_parameters(self, self._layer_input(layer)).items():
                if param is not None:
                    self.register_parameter(name + suffix, param)

    def reset_parameters(self):
        """Draw every parameter again as at construction (PyTorch's U(-1/√H, 1/√H), the variants')."""
        for layer, suffix in self._cells():
            reset_like(self, cell_parameters(self, self._layer_input(layer)), suffix)

    def _cells(self):
        """(layer, parameter suffix) of every layer and direction, in PyTorch's order."""
        return [(layer, self._suffix(layer, reverse)) for layer in range(self.num_layers)
                for reverse in self._reverse_flags]

    def _layer_input(self, layer):
        return self.input_size if layer == 0 else (self.proj_size or self.hidden_size) * self._directions

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

        x may be a :class:`~nn.utils.rnn.PackedSequence` (its lengths replace ``lengths``);
        the output is then one too, with x's batch sizes and order, as PyTorch's.
        """
        owner = type(self).__name__
        if isinstance(x, PackedSequence):
            if lengths is not None or return_all_states:
                raise ValueError(f"{owner}: a PackedSequence carries its lengths; pass neither lengths= "
                                 "nor return_all_states=True with it")
            return run_packed(self, x, hx)
        dtype = self.weight_ih_l0.dtype
        x = tg.as_variable(x)
        check_dtype(owner, "input", x, dtype)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size or x.size == 0:
            layout = "(batch, seq_len" if self.batch_first else "(seq_len, batch"
            raise tg.ShapeError(f"{owner}: input of shape {x.shape} does not fit; expected "
                                f"{layout}, {self.input_size}) or (seq_len, {self.input_size})")
        batched = x.ndim == 3
        # Time-major, recorded in layer 0's scope with the steps along axis 0: an anomaly already
        # in the input is then reported in the scope of its step.
        with tg.scope(self._scope_name(0, False)), tg.step_axis(0):
            if not batched:
                x = x.reshape(x.shape[0], 1, self.input_size)
            elif self.batch_first:
                x = x.transpose(1, 0, 2)
        steps, batch = x.shape[:2]
        valid = valid_steps(owner, lengths, steps, batch)
        stacked = self.num_layers * self._directions
        shape = (stacked, batch, self.hidden_size) if batched else (stacked, self.hidden_size)
        names = ("h_0", "c_0") if self.mode == "LSTM" else ("h_0",)
        sizes = (self.proj_size or self.hidden_size, self.hidden_size)[:len(names)]
        states = initial_state(owner, hx, names, shape, (stacked, batch, self.hidden_size), dtype, sizes)
        states = list(zip(*(F.unbind(s) for s in states), strict=True))  # one per layer and direction
        for state in states:
            for name, v in zip(names, state, strict=True):
                v.name = name  # "h_0", "c_0", as drawings of the graph label the initial state

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
            final = [s.reshape(shape[:-1] + s.shape[-1:]) for s in final]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        final = tuple(final) if self.mode == "LSTM" else final[0]
        if not return_all_states:
            return output, final
        return output, final, self._all_states(runs, states, batched)

    def _variational_masks(self, batch, input_size, dtype):
        """The masks (x, h) of variational dropout for one layer and direction, or (None, None)."""
        p = self.variational_dropout
        if not (self.training and p):
            return None, None
        return (F.dropout_mask((batch, input_size), p, dtype),
                F.dropout_mask((batch, self.proj_size or self.hidden_size), p, dtype))

    def _scope_name(self, layer, reverse):
        """The recording scope of one layer and direction: "lstm.l0", "gru.l1.reverse", …."""
        return f"{type(self).__name__.lower()}.l{layer}" + (".reverse" if reverse else "")

    def _run(self, x, state, layer, reverse, valid, all_states):
        """One direction of one layer over the sequence x (T, B, in): a :class:`_Run`.

        ``all_states``: the gates of every step are wanted as Variables (composed cells).
        """
        steps, batch = x.shape[:2]
        with tg.scope(self._scope_name(layer, reverse)):
            x_mask, h_mask = self._variational_masks(batch, x.shape[2], x.dtype)
            composed = all_states or (h_mask is not None and self.mode == "GRU")
            cell = CellEquations(self, self._suffix(layer, reverse), composed=composed,
                                 sequence=(steps, batch))
            with tg.step_axis(0):  # row t is step t's input side: an anomaly in it is reported in t's scope
                projection = cell.project_input(x if x_mask is None else x * x_mask)
            input_gates = F.unbind(projection)
            for v in input_gates:
                v.name = "x W_ihᵀ + b"  # each step's input side of the gates, as drawings label it
            run = _Run(steps, valid)
            for t in reversed(range(steps)) if reverse else range(steps):
                with tg.scope(f"t={t}"):
                    new, gates = cell.step(input_gates[t], state, h_mask)
                    if valid is not None and not valid[t].all():
                        # A sequence past its end keeps its state: h_n is the state at its last
                        # step, and the reverse direction starts there from h_0.
                        new = tuple(F.where(valid[t], n, s) for n, s in zip(new, state, strict=True))
                    for name, v in zip(("h", "c"), new, strict=False):
                        v.name = name  # how drawings of the graph label the state (the cluster: the step)
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
                   for i, name in enumerate(GATE_NAMES[self.mode])},
            steps=tuple(tuple(run.states) for run in runs),
            initial=tuple(initial),
            directions=self._directions)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
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
        text += variant_repr(self)
        if self.variational_dropout:
            text += f", variational_dropout={self.variational_dropout}"
        return text + ("" if self.fused else ", fused=False")


def _check_proj_size(owner, proj_size, hidden_size, variant):
    """PyTorch's checks of an LSTM's ``proj_size``; projections do not combine with the variants."""
    if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
        raise ValueError(f"{owner}: proj_size should be a positive integer or zero to disable projections, "
                         f"got {proj_size!r}")
    if proj_size >= hidden_size:
        raise ValueError(f"{owner}: proj_size has to be smaller than hidden_size, got proj_size={proj_size} "
                         f"and hidden_size={hidden_size}")
    used = [name for name in ("peephole", "layer_norm") if variant.get(name)]
    if proj_size and used:
        raise ValueError(f"{owner}: proj_size={proj_size} does not combine with {' and '.join(used)}=True")


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
        super().__init__(rnn_mode("RNN", nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, fused, variational_dropout)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """LSTM layers: with [zᵢ, z_f, z_g, z_o] = xₜ Wᵢₕᵀ + bᵢₕ + hₜ₋₁ Wₕₕᵀ + bₕₕ,

        i = σ(zᵢ),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
        cₜ = f ⊙ cₜ₋₁ + i ⊙ g,   hₜ = o ⊙ tanh(cₜ)

    ``forward(x, (h_0, c_0))`` returns ``(output, (h_n, c_n))``; see ``forward`` for shapes.
    ``proj_size=P`` (0 < P < H): PyTorch's LSTM with projections, hₜ = (o ⊙ tanh cₜ) W_hrᵀ of
    size P (weight_hr_l{k}, (P, H); Wₕₕ is (4H, P)), so h_0, h_n and the output have P
    features where c has H; a step then runs the composed cell.
    ``peephole``, ``layer_norm`` and ``forget_bias``: see :mod:`nn.cells`;
    ``variational_dropout``: the module docstring.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, peephole=False, layer_norm=False,
                 forget_bias=0.0, variational_dropout=0.0, fused=True):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, fused, variational_dropout, proj_size, peephole=peephole,
                         layer_norm=layer_norm, forget_bias=forget_bias)


class GRU(_RNNBase):
    """GRU layers (PyTorch's equations): with [aᵣ, a_z, aₙ] = xₜ Wᵢₕᵀ + bᵢₕ and
    [bᵣ, b_z, bₙ] = hₜ₋₁ Wₕₕᵀ + bₕₕ,

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  n = tanh(aₙ + r ⊙ bₙ)
        hₜ = (1 - z) ⊙ n + z ⊙ hₜ₋₁

    See ``forward`` for the shapes, initial states and ``lengths``; ``reset_after`` and
    ``layer_norm`` in :mod:`nn.cells`, ``variational_dropout`` in the module docstring.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, reset_after=True, layer_norm=False,
                 variational_dropout=0.0, fused=True):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, fused, variational_dropout, reset_after=reset_after,
                         layer_norm=layer_norm)
