"""Truncated backpropagation through time with separate k1 and k2: TBPTT(k1, k2) (Sutskever, 2013).

A long stream is processed k1 steps at a time, carrying the recurrent state; each update
back-propagates the loss of its k1 new steps through the last k2 ≥ k1 steps, so that the
gradient reaches k2 - k1 steps into the previous windows. With k1 = k2 it is the ordinary
truncation of the :class:`nn.data.StreamBatcher` loop, in which gradients stop at the
window edge.
"""

import numbers

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from nn.data import detach_state
from tensorgrad.variable import data_of


class TBPTT:
    """TBPTT(k1, k2) for a ``model(inputs, state) -> (outputs, state)`` and ``loss_fn(outputs, targets)``.

    ``inputs`` and ``outputs`` are time-major (time on axis 0), as :class:`StreamBatcher`
    gives them; the state is whatever the model returns (a Variable, a tuple of them, or
    None for the model's own initial state). Each call of :meth:`forward_backward` takes a
    window of at most k1 steps, runs the model over it and accumulates into the parameters'
    ``.grad`` the gradient of ``loss_fn(outputs of the window, targets)`` through the window
    and the k2 - k1 steps before it; the optimizer step is the caller's::

        tbptt = TBPTT(model, loss_fn, k1=16, k2=48)
        for inputs, targets in StreamBatcher(ids, batch_size=32, seq_len=tbptt.k1):
            optimizer.zero_grad()
            loss = tbptt.forward_backward(inputs, targets)
            optimizer.step()

    The k2 - k1 earlier steps are run again, from the state stored where they begin, with
    the current parameters: the gradient is exactly that of the window's loss as a function
    of the parameters through the last k2 steps. (Keeping the graph of earlier windows
    instead would mix activations computed with older parameters, before the optimizer's
    updates, with the current ones.) That costs k2 - k1 extra forward steps per update,
    two model calls instead of one; with k1 = k2 there is one call per window, the loop of
    the StreamBatcher docstring exactly.

    ``jit=True`` (the default) runs each window's model calls and loss as a traced plan
    (:func:`tensorgrad.jit`): the same losses and gradients, bit for bit, with less Python
    per step. The model's train/eval mode and ``loss_fn``'s Python decisions are then
    those of the first window of each shape; ``jit=False`` runs them eagerly every time.
    """

    def __init__(self, model, loss_fn, k1, k2=None, *, jit=True):
        k2 = k1 if k2 is None else k2
        for name, value in (("k1", k1), ("k2", k2)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TBPTT: {name} must be a positive integer, got {value!r}")
        if k2 < k1:
            raise ValueError(f"TBPTT: k2 must be at least k1 (each update back-propagates its own k1 steps), "
                             f"got k1={k1} and k2={k2}")
        self.model = model
        self.loss_fn = loss_fn
        self.k1 = int(k1)
        self.k2 = int(k2)
        self._window_loss = tg.jit(self._run) if jit else self._run
        self.reset()

    def reset(self, state=None):
        """Start a new stream from ``state`` (None: the model's initial state)."""
        self.state = detach_state(state)  # carried to the next window
        self._past_inputs = None  # the last k2 - k1 inputs (or fewer, early on) ...
        self._past_state = self.state  # ... and the state they start from

    def forward_backward(self, inputs, targets):
        """Run the window ``inputs`` (≤ k1 steps), back-propagate its loss; return the loss as a float."""
        steps = len(inputs)
        if not 1 <= steps <= self.k1:
            raise ValueError(f"TBPTT: a window of {steps} steps does not fit k1={self.k1} "
                             f"(expected 1 to {self.k1} steps)")
        inputs = data_of(inputs)
        if self._past_inputs is not None:
            inputs = np.concatenate([self._past_inputs, inputs])
        # Run up to where the next update's reach begins, then the rest: the state in between
        # is where the next update starts again.
        split = max(0, len(inputs) - (self.k2 - self.k1))
        loss, past_state, state = self._window_loss(inputs, targets, self._past_state, split, steps)
        loss.backward()
        self._past_inputs = inputs[split:] if split < len(inputs) else None
        self._past_state = detach_state(past_state)
        self.state = detach_state(state)
        return loss.item()

    def _run(self, inputs, targets, state, split, steps):
        """(the loss of the last ``steps`` outputs, the state after ``split`` steps, the final state)."""
        outputs, past_state = [], state
        if split:
            output, state = self.model(inputs[:split], state)
            outputs.append(output)
            past_state = state
        if split < len(inputs):
            output, state = self.model(inputs[split:], state)
            outputs.append(output)
        output = outputs[0] if len(outputs) == 1 else F.concat(outputs, axis=0)
        if len(output) != steps:
            output = output[len(output) - steps:]  # the window's own steps
        return self.loss_fn(output, targets), past_state, state
