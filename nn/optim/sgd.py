"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""

from nn.optim.optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's update rule. For each parameter θ:

        g ← ∇θ + λθ                                   (weight_decay λ)
        b ← g at the first step, else μb + (1 - τ)g   (momentum μ, dampening τ; if μ ≠ 0)
        g ← g + μb if nesterov else b                  (if μ ≠ 0)
        θ ← θ - lr·g
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=float(lr), momentum=float(momentum), dampening=float(dampening),
                                      weight_decay=float(weight_decay), nesterov=bool(nesterov)))

    def _check(self, group):
        self._nonnegative(group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def _state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _update(self, param, grad, state, group):
        momentum = group["momentum"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param -= group["lr"] * grad
