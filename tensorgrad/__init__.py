"""tensorgrad: define-by-run, tape-based reverse-mode automatic differentiation on NumPy.

    import tensorgrad as tg
    import tensorgrad.functions as F

    x = tg.Variable(np.array([[1.0, 2.0]]), name="x")
    y = F.tanh(x @ W + b).sum()
    y.backward()          # x.grad is a Variable
"""

from tensorgrad.variable import Variable, as_variable  # noqa: I001 - Variable first: the rest build on it
from tensorgrad.autograd import grad
from tensorgrad.function import AnomalyError, Function, ShapeError
from tensorgrad.gradcheck import GradcheckError, gradcheck, gradgradcheck
from tensorgrad.jit import jit
from tensorgrad.modes import (TraceError, TraceWarning, detect_anomaly, enable_grad, is_grad_enabled, no_grad,
                             scope, set_grad_enabled, step_axis)
from tensorgrad.random import manual_seed
from tensorgrad import functions

__all__ = [
    "Variable", "Function", "as_variable", "grad", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "scope", "step_axis", "detect_anomaly", "gradcheck", "gradgradcheck", "manual_seed",
    "functions", "AnomalyError", "ShapeError", "GradcheckError", "jit", "TraceError",
    "TraceWarning",
]
__version__ = "0.1.0"
