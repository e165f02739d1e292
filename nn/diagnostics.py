"""Gradient flow through time in a recurrent layer: vanishing and exploding gradients, measured.

Everything here reads the graph a layer records when asked for every step's state
(``layer(x, hx, return_all_states=True)``, see :class:`nn.recurrent.RecurrentStates`); none
of it runs a second implementation of the cells:

- :class:`GradientProbe` registers tensor hooks (``Variable.register_hook``) on every
  step's hidden state hₜ (and cell state cₜ) and records ‖∂L/∂hₜ‖ (and ‖∂L/∂cₜ‖) as the
  backward pass of any loss L reaches them, so it can ride along an ordinary training step;
- :func:`jacobian_norms` differentiates each step's hₜ with respect to the state it came
  from: the norms of the step-to-step Jacobians ∂hₜ/∂hₜ₋₁, whose products are what
  shrinks or grows the gradient on its way back;
- :func:`gate_saturation` counts the gates stuck near 0 or 1, where they pass almost no
  gradient;
- :func:`gradient_flow` does all three for one batch and :func:`plot` draws the result.

Arrays are indexed [k, t], with k = layer·D + direction (D = 2 if bidirectional, else 1,
as for h_n) and t the time step (in the time order of the input, for either direction).
"""

from dataclasses import dataclass

import numpy as np

import tensorgrad as tg
from tensorgrad.functions.cells import GATE_NONLINEARITIES
from tensorgrad.variable import data_of


class GradientProbe:
    """Records ‖∂L/∂hₜ‖ and ‖∂L/∂cₜ‖ for every step of a recorded layer run, through tensor hooks.

    ``states`` is the :class:`~nn.recurrent.RecurrentStates` of the run. The hooks fire in
    whatever backward pass reaches the states (``loss.backward()`` or ``tg.grad``) and do
    not change the gradient. The norm is taken over the batch and the units of the step
    (the Frobenius norm of the (B, H) gradient); ∂L/∂cₜ is the whole gradient at cₜ,
    through hₜ = o ⊙ tanh(cₜ) and the next step alike. Steps that no gradient has reached
    read 0. ``remove()`` unregisters the hooks.
    """

    def __init__(self, states):
        shape = (len(states.steps), len(states.steps[0]))
        self.grad_h = np.zeros(shape)
        self.grad_c = np.zeros(shape) if states.c is not None else None
        self._handles = []
        for k, steps in enumerate(states.steps):
            for t, state in enumerate(steps):
                for norms, variable in zip((self.grad_h, self.grad_c), state, strict=False):
                    self._handles.append(variable.register_hook(self._recorder(norms, k, t)))

    @staticmethod
    def _recorder(norms, k, t):
        def record(grad):
            norms[k, t] = np.linalg.norm(grad.data)
        return record

    def remove(self):
        """Unregister the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def step_jacobians(states):
    """∂hₜ/∂hₜ₋₁ for every step and sample: an array (L·D, T, B, H, H), row i for unit i of hₜ.

    For the reverse direction the step comes from hₜ₊₁. With an LSTM, cₜ₋₁ is held fixed (the
    state is the pair (h, c); this is the hidden-to-hidden block of the step's Jacobian).
    Each step costs H backward passes over the recorded graph (one per unit of hₜ: samples
    are independent, so one pass gives that row for the whole batch). A step whose previous
    state does not require a gradient (the first step, when the initial state is a
    constant) is NaN; :func:`gradient_flow` passes an initial state that does.
    """
    first = states.steps[0][0][0]
    batch, hidden = first.shape
    jacobians = np.full((len(states.steps), len(states.steps[0]), batch, hidden, hidden), np.nan)
    for k, steps in enumerate(states.steps):
        for t, state in enumerate(steps):
            h, previous = state[0], states.previous(k, t)[0]
            if not previous.requires_grad:
                continue
            for unit in range(hidden):
                seed = np.zeros(h.shape, h.dtype)
                seed[:, unit] = 1
                row = tg.grad(h, previous, [seed])[0]
                jacobians[k, t, :, unit] = 0.0 if row is None else row.data
    return jacobians


def jacobian_norms(states, ord=2):  # noqa: A002 - NumPy's name for the norm's order
    """The norms ‖∂hₜ/∂hₜ₋₁‖ per step and sample, (L·D, T, B): the spectral norm (the largest
    singular value, ``ord=2``, a bound on how much one step can grow a gradient) or any
    matrix norm ``numpy.linalg.norm`` takes (``"fro"``, ...). See :func:`step_jacobians`."""
    jacobians = step_jacobians(states)
    norms = np.full(jacobians.shape[:3], np.nan)
    known = ~np.isnan(jacobians).any(axis=(-2, -1))
    norms[known] = np.linalg.norm(jacobians[known], ord=ord, axis=(-2, -1))
    return norms


def gate_saturation(states, threshold=0.05):
    """The fraction of saturated gate units per step: {gate name: array (L·D, T)}.

    A sigmoid gate is saturated below ``threshold`` or above 1 - ``threshold``; a tanh gate
    (the LSTM's g, the GRU's n), whose range is twice as wide, below -1 + 2·threshold or above
    1 - 2·threshold. The fraction is over the batch and the units. A plain RNN has no gates
    (an empty dict).
    """
    if not 0 < threshold < 0.5:
        raise ValueError(f"gate_saturation: threshold must lie in (0, 0.5), got {threshold}")
    fractions = {}
    for name, gate in states.gates.items():
        values = gate.data if GATE_NONLINEARITIES[name] == "sigmoid" else (gate.data + 1) / 2
        saturated = (values < threshold) | (values > 1 - threshold)
        fractions[name] = saturated.reshape(saturated.shape[:2] + (-1,)).mean(axis=-1)
    return fractions


@dataclass
class GradientFlow:
    """What :func:`gradient_flow` measured, as arrays indexed [k, t] (k = layer·D + direction).

    grad_h: ‖∂L/∂hₜ‖, (L·D, T); grad_c: ‖∂L/∂cₜ‖ (LSTM) or None; jacobian_norm: the spectral
    norm of ∂hₜ/∂hₜ₋₁ per sample, (L·D, T, B), or None if not computed; saturation: the
    fraction of saturated units per gate, {name: (L·D, T)}; loss: the value of L.
    """

    grad_h: np.ndarray
    grad_c: np.ndarray | None
    jacobian_norm: np.ndarray | None
    saturation: dict
    loss: float


def gradient_flow(layer, x, loss_fn, hx=None, *, lengths=None, jacobians=True, threshold=0.05):
    """Run ``layer`` (an nn.RNN, nn.LSTM or nn.GRU) over the batch ``x`` and measure the gradient flow.

    ``loss_fn(output, final_state)`` gives the scalar loss L from the layer's output and
    h_n (LSTM: (h_n, c_n)); ``lengths`` are those of the sequences of a padded batch, as the
    layer takes them. ``hx`` is the initial state (zeros if None); it is made a leaf
    that requires a gradient, so that the first step has a Jacobian too. The gradients are
    computed with ``tg.grad``: no ``.grad`` of the layer's parameters changes. Returns a
    :class:`GradientFlow`; ``jacobians=False`` skips the Jacobians (H backward passes per
    step), ``threshold`` is that of :func:`gate_saturation`.
    """
    hx = _leaf_state(layer, x, hx)
    output, final, states = layer(x, hx, lengths, return_all_states=True)
    probe = GradientProbe(states)
    try:
        loss = loss_fn(output, final)
        tg.grad(loss, list(hx) if isinstance(hx, tuple) else [hx])
    finally:
        probe.remove()
    return GradientFlow(grad_h=probe.grad_h, grad_c=probe.grad_c,
                        jacobian_norm=jacobian_norms(states) if jacobians else None,
                        saturation=gate_saturation(states, threshold), loss=loss.item())


def _leaf_state(layer, x, hx):
    """``hx`` (zeros if None) as leaves that require a gradient, in the layer's dtype."""
    dtype = layer.weight_ih_l0.dtype
    if hx is None:
        x = data_of(x)
        stacked = layer.num_layers * (2 if layer.bidirectional else 1)
        batch = () if x.ndim == 2 else (x.shape[0 if layer.batch_first else 1],)
        zeros = np.zeros((stacked,) + batch + (layer.hidden_size,), dtype)
        hx = (zeros, zeros) if layer.mode == "LSTM" else zeros
    if isinstance(hx, (tuple, list)):
        return tuple(tg.Variable(data_of(h)) for h in hx)
    return tg.Variable(data_of(hx))


def plot(flow, title=None):
    """A matplotlib Figure of a :class:`GradientFlow`: the gradient norms per step (log scale),
    the mean Jacobian norm per step and the gate saturation per step, one line per layer
    and direction (and gate)."""
    import matplotlib.pyplot as plt

    panels = 1 + (flow.jacobian_norm is not None) + bool(flow.saturation)
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    axes = list(axes[0])
    labels = [f"k={k}" for k in range(len(flow.grad_h))]
    ax = axes.pop(0)
    for k, label in enumerate(labels):
        (line,) = ax.semilogy(flow.grad_h[k], label=f"‖∂L/∂h‖ {label}")
        if flow.grad_c is not None:
            ax.semilogy(flow.grad_c[k], "--", color=line.get_color(), label=f"‖∂L/∂c‖ {label}")
    ax.set(xlabel="time step t", ylabel="gradient norm", title="gradient through time")
    ax.legend(fontsize="small")
    if flow.jacobian_norm is not None:
        ax = axes.pop(0)
        for k, label in enumerate(labels):
            ax.plot(flow.jacobian_norm[k].mean(axis=-1), label=label)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set(xlabel="time step t", ylabel="‖∂hₜ/∂hₜ₋₁‖₂ (batch mean)", title="step Jacobians")
        ax.legend(fontsize="small")
    if flow.saturation:
        ax = axes.pop(0)
        for name, fractions in flow.saturation.items():
            for k, label in enumerate(labels):
                ax.plot(fractions[k], label=f"{name} {label}")
        ax.set(xlabel="time step t", ylabel="fraction saturated", ylim=(-0.02, 1.02), title="gate saturation")
        ax.legend(fontsize="small", ncol=2)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
