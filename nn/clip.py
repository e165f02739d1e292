"""Gradient clipping: rescale gradients whose total norm is too large, or clamp each value.

Both replace ``param.grad`` by a new Variable rather than writing into its array: autograd
may hand one gradient array (or a read-only broadcast view) to several parameters.
"""

import math

import numpy as np

from tensorgrad import Variable


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients so that their total norm is at most ``max_norm``; return the norm before.

    The total norm is the p-norm (p = ``norm_type``, 2 or ``inf`` or any p > 0) of all
    gradient elements together, ‖g‖ = (Σ |gᵢ|ᵖ)^(1/p). When ‖g‖ > ``max_norm`` every gradient
    is multiplied by max_norm / (‖g‖ + 1e-6), as ``torch.nn.utils.clip_grad_norm_`` does.
    Parameters without a gradient are skipped. A non-finite norm raises RuntimeError when
    ``error_if_nonfinite`` is set.
    """
    params = _with_grad(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm: max_norm must be non-negative, got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm: norm_type must be positive or inf, got {norm_type}")
    if not params:
        return 0.0
    norms = [np.linalg.norm(p.grad.data.reshape(-1), ord=norm_type) for p in params]
    total = float(np.linalg.norm(np.array(norms, dtype=np.float64), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm: the total norm of order {norm_type} of the gradients is "
                           f"{total}, so it cannot be clipped; pass error_if_nonfinite=False to scale "
                           "by it anyway")
    scale = max_norm / (total + 1e-6)
    if scale < 1.0 or math.isnan(scale):  # a NaN norm spreads into the gradients, as in PyTorch
        for p in params:
            grad = p.grad.data
            p.grad = Variable(grad * np.asarray(scale, dtype=grad.dtype), requires_grad=False)
    return total


def clip_grad_value(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value] (``clip_value`` ≥ 0)."""
    clip_value = float(clip_value)
    if clip_value < 0:
        raise ValueError(f"clip_grad_value: clip_value must be non-negative, got {clip_value}")
    for p in _with_grad(parameters):
        p.grad = Variable(np.clip(p.grad.data, -clip_value, clip_value), requires_grad=False)


def _with_grad(parameters):
    """The parameters (an iterable, or one Variable) that have a gradient."""
    if isinstance(parameters, Variable):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]
