"""nn.Recurrent: any cell run over a sequence as a recurrent layer.

A cell is a Module whose ``forward(x, state)`` returns the next state, for an input x of
shape (B, input_size) and ``state`` None at the first step: a Variable h (B, H), or a
tuple whose first item is h, such as LSTM's (h, c). ``Recurrent`` unrolls it over time,
as ``nn.RNN`` unrolls its cell:

    hₜ = cell(xₜ, hₜ₋₁),   output = [h₁, ..., h_T]

with num_layers cells stacked (layer k reads the outputs of layer k - 1) and, with
``bidirectional``, a second cell per layer reading the sequence backwards, its outputs
concatenated with the first's. Each step is recorded in its own scope
(``recurrent.l{k}[.reverse]/t={t}``), so ``tensorgrad.viz.make_dot`` draws one cluster per
step. Passing the returned h_n back as ``hx`` carries the state into the next window
(detach it for truncated BPTT).
"""

import copy

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from nn.module import Module
from nn.utils.rnn import PackedSequence, run_packed, valid_steps


class Recurrent(Module):
    """Run ``cell`` over sequences: ``forward(x, hx=None, lengths=None) -> (output, h_n)``.

    ``cell`` is one Module, copied and re-initialised (every module in it that has
    ``reset_parameters`` draws its parameters again) for every further layer and
    direction, so its input size must fit them all; or a list of num_layers·D cells in
    h_n's order (layer 0, layer 0 reverse, layer 1, ...). D is 2 if ``bidirectional``.
    The cells are registered as ``cell_l{k}`` and ``cell_l{k}_reverse``.

    x: (T, B, input_size), (B, T, input_size) with ``batch_first``, (T, input_size)
    unbatched, or a :class:`~nn.utils.rnn.PackedSequence` (then the output is one too).
    hx: None (every cell starts from None), or h_0 stacked as h_n is: (num_layers·D, B, H),
    or a tuple of such stacks for a tuple state. output: (T, B, D·H), laid out as x.

    ``lengths`` (one int in 1..T per sequence of a padded batch): outputs past a
    sequence's end are zero and h_n holds its state at its last valid step; the reverse
    direction starts at that step, from the zero state (which is what a cell given None
    must start from, as the built-in cells do).
    """

    def __init__(self, cell, num_layers=1, batch_first=False, bidirectional=False):
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"Recurrent: num_layers must be an integer >= 1, got {num_layers!r}")
        self.num_layers = num_layers
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        count = num_layers * self._directions
        if isinstance(cell, list | tuple):
            cells = list(cell)
            if len(cells) != count:
                raise ValueError(f"Recurrent: {len(cells)} cells given for {num_layers} layer(s) × "
                                 f"{self._directions} direction(s); it takes one cell or {count}")
        else:
            cells = [cell] + [_fresh_copy(cell) for _ in range(count - 1)]
            _check_stackable(cell, num_layers, self._directions)
        for k, c in enumerate(cells):
            if not isinstance(c, Module):
                raise TypeError(f"Recurrent: cell {k} must be a Module, got {type(c).__name__}")
            layer, reverse = divmod(k, self._directions)
            self.add_module(f"cell_l{layer}" + ("_reverse" if reverse else ""), c)

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    def forward(self, x, hx=None, lengths=None):
        if isinstance(x, PackedSequence):
            if lengths is not None:
                raise ValueError("Recurrent: a PackedSequence carries its lengths; pass no lengths=")
            return run_packed(self, x, hx)
        x = tg.as_variable(x)
        if x.ndim not in (2, 3) or x.size == 0:
            layout = "(batch, seq_len" if self.batch_first else "(seq_len, batch"
            raise tg.ShapeError(f"Recurrent: input of shape {x.shape} does not fit; expected "
                                f"{layout}, input_size) or (seq_len, input_size)")
        batched = x.ndim == 3
        # Time-major, recorded in layer 0's scope with the steps along axis 0 (as nn.RNN's layers
        # do): an anomaly already in the input is reported in the scope of its step.
        with tg.scope("recurrent.l0"), tg.step_axis(0):
            if not batched:
                x = x.reshape(x.shape[0], 1, x.shape[1])
            elif self.batch_first:
                x = x.transpose(1, 0, 2)
        steps, batch = x.shape[:2]
        valid = valid_steps("Recurrent", lengths, steps, batch)
        cells = list(self._modules.values())
        states = _unstack(hx, len(cells), batched)
        finals = []
        output = x
        for layer in range(self.num_layers):
            outputs = []
            for reverse in range(self._directions):
                k = layer * self._directions + reverse
                name = f"recurrent.l{layer}" + (".reverse" if reverse else "")
                out, final = _run(cells[k], name, output, states[k], valid, bool(reverse))
                outputs.append(out)
                finals.append(final)
            output = F.concat(outputs, axis=2) if self.bidirectional else outputs[0]
        h_n = _stack(finals, batched)
        if not batched:
            output = output.reshape(steps, -1)
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return output, h_n

    def extra_repr(self):
        text = f"num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        return text + (", bidirectional=True" if self.bidirectional else "")


def _run(cell, name, x, state, valid, reverse):
    """One cell over the sequence x (T, B, in): every step's h stacked (T, B, H), and the last state."""
    inputs = F.unbind(x)
    hidden = [None] * len(inputs)
    with tg.scope(name):
        for t in reversed(range(len(inputs))) if reverse else range(len(inputs)):
            with tg.scope(f"t={t}"):
                new = cell(inputs[t], state)
                _check_state(cell, new, state)
                if valid is not None and not valid[t].all():
                    # Past its end a sequence keeps its state (the zero state before its start,
                    # in reverse).
                    old = _map(lambda n: np.zeros(n.shape, n.dtype), new) if state is None else state
                    new = _keep(valid[t], new, old)
                state = new
                hidden[t] = state if isinstance(state, tg.Variable) else state[0]
    output = F.stack(hidden)
    return (output if valid is None else F.where(valid, output, 0.0)), state


def _map(fn, *states):
    """``fn`` applied to each component of states of one structure (a Variable or a tuple)."""
    if isinstance(states[0], tuple):
        return tuple(fn(*parts) for parts in zip(*states, strict=True))
    return fn(*states)


def _keep(mask, new, old):
    """The state ``new`` where ``mask`` (B, 1) holds, ``old`` elsewhere."""
    return _map(lambda n, s: F.where(mask, n, s), new, old)


def _check_state(cell, new, old):
    name = type(cell).__name__
    if not (isinstance(new, tg.Variable) or isinstance(new, tuple) and new
            and all(isinstance(s, tg.Variable) for s in new)):
        raise TypeError(f"Recurrent: {name}.forward(x, state) must return the next state, a Variable or "
                        f"a tuple of them, got {type(new).__name__}")
    if old is not None:
        shapes = [s.shape for s in (new if isinstance(new, tuple) else (new,))]
        expected = [s.shape for s in (old if isinstance(old, tuple) else (old,))]
        if shapes != expected:
            raise tg.ShapeError(f"Recurrent: {name} returned a state of shape(s) {shapes} from one of "
                                f"{expected}; a cell's state keeps its shape")


def _unstack(hx, count, batched):
    """The initial state of each of the ``count`` cells from h_0 stacked as h_n (None: all None)."""
    if hx is None:
        return [None] * count
    parts = hx if isinstance(hx, tuple) else (hx,)
    parts = [tg.as_variable(p) for p in parts]
    for p in parts:
        if p.ndim != (3 if batched else 2) or len(p) != count:
            raise tg.ShapeError(f"Recurrent: hx of shape {p.shape} does not fit; expected "
                                f"({count}, {'batch, ' if batched else ''}hidden_size), one state per "
                                "layer and direction")
    if not batched:
        parts = [p.reshape(p.shape[0], 1, p.shape[1]) for p in parts]
    per_cell = list(zip(*(F.unbind(p) for p in parts), strict=True))
    return [s if isinstance(hx, tuple) else s[0] for s in per_cell]


def _stack(finals, batched):
    """h_n: the last states of the cells stacked (count, B, H), a tuple of such for tuple states."""
    def stack(parts):
        stacked = F.stack(parts)
        return stacked if batched else stacked.reshape(stacked.shape[0], -1)

    if isinstance(finals[0], tuple):
        return tuple(stack(list(parts)) for parts in zip(*finals, strict=True))
    return stack(finals)


def _fresh_copy(cell):
    """A deep copy of ``cell`` whose parameters are drawn again by its reset_parameters."""
    if not isinstance(cell, Module):
        raise TypeError(f"Recurrent: cell must be a Module, got {type(cell).__name__}")
    resettable = [m for m in cell.modules() if callable(getattr(m, "reset_parameters", None))]
    if not resettable:
        raise TypeError(f"Recurrent: {type(cell).__name__} has no reset_parameters() (nor does any module "
                        "in it), so its copies for further layers and directions cannot be re-initialised; "
                        "define one, or pass a list of cells")
    fresh = copy.deepcopy(cell)
    for module in fresh.modules():
        if callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()
    return fresh


def _check_stackable(cell, num_layers, directions):
    """A single cell copied for layer 1 and up must read D·H inputs, where it says its sizes."""
    input_size, hidden_size = getattr(cell, "input_size", None), getattr(cell, "hidden_size", None)
    if num_layers > 1 and input_size is not None and hidden_size is not None:
        if input_size != directions * hidden_size:
            raise ValueError(f"Recurrent: layer 1 reads {directions}·{hidden_size} = "
                             f"{directions * hidden_size} inputs, but the cell copied for it has "
                             f"input_size={input_size}; pass a list of cells")
