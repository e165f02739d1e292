"""Adam: momentum and per-element scaling from bias-corrected moment estimates."""

import math

import numpy as np

from nn.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with PyTorch's update rule. For each parameter θ at step t:

        g ← ∇θ + λθ                               (weight_decay λ)
        m ← β₁m + (1 - β₁)g,   v ← β₂v + (1 - β₂)g²
        v̂ ← max(v̂, v) if amsgrad, else v̂ ← v
        θ ← θ - lr/(1 - β₁ᵗ) · m / (√v̂ / √(1 - β₂ᵗ) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=float(lr), betas=tuple(float(b) for b in betas), eps=float(eps),
                                      weight_decay=float(weight_decay), amsgrad=bool(amsgrad)))

    def _check(self, group):
        self._nonnegative(group, "lr", "eps", "weight_decay")
        if len(group["betas"]) != 2 or not all(0.0 <= beta < 1.0 for beta in group["betas"]):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {group['betas']}")

    def _state_names(self, group):
        return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state.update({name: np.zeros_like(param) for name in self._state_names(group)[1:]})
        state["step"] += 1
        step = state["step"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        work = np.multiply(grad, 1 - beta1)  # the one temporary array, reused for each term
        exp_avg *= beta1
        exp_avg += work
        np.multiply(grad, 1 - beta2, out=work)
        work *= grad
        exp_avg_sq *= beta2
        exp_avg_sq += work
        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        denom = np.sqrt(second_moment, out=work)
        denom /= math.sqrt(1 - beta2 ** step)
        denom += group["eps"]
        update = np.divide(exp_avg, denom, out=work)
        update *= group["lr"] / (1 - beta1 ** step)
        param -= update
