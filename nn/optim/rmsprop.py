"""RMSprop: gradients divided by a running root mean square of themselves."""

import numpy as np

from nn.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), with PyTorch's update rule. For each parameter θ:

        g ← ∇θ + λθ                         (weight_decay λ)
        v ← αv + (1 - α)g²
        m ← αm + (1 - α)g,  d ← √(v - m²)    if centered, else d ← √v
        d ← d + eps
        b ← μb + g/d,  θ ← θ - lr·b          if momentum μ > 0, else θ ← θ - lr·g/d
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=float(lr), alpha=float(alpha), eps=float(eps),
                                      weight_decay=float(weight_decay), momentum=float(momentum),
                                      centered=bool(centered)))

    def _check(self, group):
        self._nonnegative(group, "lr", "alpha", "eps", "weight_decay", "momentum")

    def _state_names(self, group):
        return (("step", "square_avg") + (("momentum_buffer",) if group["momentum"] > 0 else ())
                + (("grad_avg",) if group["centered"] else ()))

    def _update(self, param, grad, state, group):
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = 0
            state.update({name: np.zeros_like(param) for name in self._state_names(group)[1:]})
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1 - alpha) * grad
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / avg
            param -= group["lr"] * buf
        else:
            param -= group["lr"] * (grad / avg)
