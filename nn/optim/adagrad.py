"""Adagrad: per-element learning rates shrinking with the accumulated squared gradients."""

import numpy as np

from nn.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), with PyTorch's update rule. For each parameter θ at step t:

        g ← ∇θ + λθ                         (weight_decay λ)
        η ← lr / (1 + (t - 1)·lr_decay)
        s ← s + g²                          (s starts at initial_accumulator_value)
        θ ← θ - η · g / (√s + eps)
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        super().__init__(params, dict(lr=float(lr), lr_decay=float(lr_decay),
                                      weight_decay=float(weight_decay),
                                      initial_accumulator_value=float(initial_accumulator_value),
                                      eps=float(eps)))

    def _check(self, group):
        self._nonnegative(group, "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def _state_names(self, group):
        return ("step", "sum")

    def _update(self, param, grad, state, group):
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(param, group["initial_accumulator_value"])
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        lr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += grad * grad
        param -= lr * (grad / (np.sqrt(state["sum"]) + group["eps"]))
