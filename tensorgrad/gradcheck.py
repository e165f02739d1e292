"""Numerical checks of analytic gradients by central differences in float64.

For a function f with outputs y and a fixed random weighting w of them, the scalar
L = Σ w ⊙ y has ∂L/∂xᵢ = (L(xᵢ + ε) - L(xᵢ - ε)) / 2ε + O(ε²) for every input element
xᵢ; ``gradcheck`` compares that with what ``backward`` computes. ``gradgradcheck`` does the
same for the gradient itself, recorded with ``create_graph=True``.
"""

import numpy as np

from tensorgrad.autograd import grad
from tensorgrad.variable import Variable


class GradcheckError(AssertionError):
    """An analytic gradient differs from the numerical one; the message says where."""


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check ``fn``'s gradient with respect to every floating input; return True or raise.

    ``inputs`` are Variables or arrays. Floating ones that require a gradient (arrays
    count as requiring one) are cast to float64 and checked; the others are passed as
    they are. ``fn`` returns a Variable or a tuple of them. An analytic element a and a
    numerical one n agree when |a - n| ≤ atol + rtol·|n|; otherwise
    :class:`GradcheckError` names the input and its worst element.
    """
    arrays, checked = _prepare(inputs)
    rng = np.random.default_rng(seed)
    weights = None

    def objective(values):
        nonlocal weights
        variables = [Variable(a) if i in checked else a for i, a in enumerate(values)]
        outputs = fn(*variables)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        if weights is None:
            weights = [rng.standard_normal(y.shape) for y in outputs]
        total = None
        for y, w in zip(outputs, weights):
            term = (y * w).sum() if isinstance(y, Variable) else Variable(np.sum(y * w))
            total = term if total is None else total + term
        return total, [variables[i] for i in checked]

    total, variables = objective(arrays)
    if total.requires_grad:
        analytic = grad(total, variables)
    else:
        analytic = [None] * len(variables)
    for i, g in zip(checked, analytic):
        expected = np.zeros_like(arrays[i]) if g is None else g.data
        numeric = _central_differences(lambda: objective(arrays)[0].data, arrays[i], eps)
        _compare(i, inputs[i], expected, numeric, atol, rtol)
    return True


def gradgradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check the second derivatives of ``fn`` as :func:`gradcheck` checks the first.

    The function checked is g(x) = Σᵢ vᵢ ⊙ ∂L/∂xᵢ for fixed random vᵢ, where ∂L/∂x is
    computed by ``backward`` with ``create_graph=True``.
    """
    arrays, checked = _prepare(inputs)
    rng = np.random.default_rng(seed + 1)
    directions = {i: rng.standard_normal(arrays[i].shape) for i in checked}
    weights = None

    def first_derivative(*xs):
        nonlocal weights
        outputs = fn(*xs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        if weights is None:
            weights = [rng.standard_normal(y.shape) for y in outputs]
        total = sum(((y * w).sum() for y, w in zip(outputs, weights)), start=Variable(np.float64(0)))
        if not total.requires_grad:
            return total
        grads = grad(total, [xs[i] for i in checked], create_graph=True)
        terms = [(g * directions[i]).sum() for i, g in zip(checked, grads) if g is not None]
        return sum(terms, start=Variable(np.float64(0)))

    return gradcheck(first_derivative, *arrays, eps=eps, atol=atol, rtol=rtol, seed=seed)


def _prepare(inputs):
    """float64 copies of the inputs to check, and their positions."""
    arrays, checked = [], []
    for i, x in enumerate(inputs):
        data = x.data if isinstance(x, Variable) else np.asarray(x)
        wants_grad = x.requires_grad if isinstance(x, Variable) else True
        if data.dtype.kind == "f" and wants_grad:
            arrays.append(np.array(data, dtype=np.float64))
            checked.append(i)
        else:
            arrays.append(x)
    if not checked:
        raise ValueError("gradcheck: no floating-point input to check")
    return arrays, checked


def _central_differences(evaluate, array, eps):
    numeric = np.zeros_like(array)
    flat, out = array.reshape(-1), numeric.reshape(-1)
    for j in range(flat.size):
        original = flat[j]
        flat[j] = original + eps
        plus = float(evaluate())
        flat[j] = original - eps
        minus = float(evaluate())
        flat[j] = original
        out[j] = (plus - minus) / (2 * eps)
    return numeric


def _compare(i, given, analytic, numeric, atol, rtol):
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if excess.size == 0 or excess.max() <= 0 and np.isfinite(analytic).all():
        return
    worst = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(excess), excess, np.inf))),
                             numeric.shape)
    name = getattr(given, "name", None)
    label = f"input {i}" + (f" ({name!r})" if name else "")
    raise GradcheckError(
        f"gradcheck: {label} of shape {numeric.shape}: element {tuple(int(k) for k in worst)} has "
        f"analytic gradient {analytic[worst]:.8g} but numerical {numeric[worst]:.8g} "
        f"(tolerance atol={atol} + rtol={rtol}·|numerical|)")
