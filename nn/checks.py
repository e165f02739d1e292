"""Argument checks shared by the modules: each error names the module and the argument."""

import numbers


def check_size(owner, name, value, minimum=1):
    """``value`` must be an integer (not a bool) of at least ``minimum``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        bound = "greater than zero" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{owner}: {name} must be {bound}, got {value}")


def check_probability(owner, name, value):
    """``value`` must be a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1], got {value!r}")


def check_dtype(owner, what, value, dtype):
    """The Variable ``value`` must have the parameters' ``dtype``."""
    if value.dtype != dtype:
        raise TypeError(f"{owner}: {what} has dtype {value.dtype}, but the parameters are {dtype}; "
                        "cast the one or the other (e.g. model.double())")
