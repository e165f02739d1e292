"""Recording modes: gradient mode, recording scopes (and the step axis), anomaly detection,
and what ``tg.jit``'s tracer tells the user (:class:`TraceError`, :class:`TraceWarning`).

All of them are switches of the calling thread, read by :class:`tensorgrad.Function` each
time it is called: as in PyTorch, ``no_grad()`` in one thread leaves recording on in the
others, and every new thread starts with recording on. They are context managers and
decorators (``@tg.no_grad()`` or ``@tg.no_grad``); a decorated generator runs each of its
steps inside the switch, as in PyTorch.
"""

import copy
import functools
import inspect
import sys
import threading
import warnings


class _State(threading.local):
    """The switches every Function call reads, one set per thread (``__init__`` runs again
    in each thread that reads them)."""

    def __init__(self):
        self.grad_enabled = True
        self.scope = None  # "outer/inner" path of the open scopes, or None
        self.step_axis = None  # the axis of the time steps t=0, t=1, ... in outputs recorded now, or None
        self.anomaly = False
        self.tracer = None  # tg.jit's trace in progress: told of every Function call, recorded or not


state = _State()


def is_grad_enabled():
    """Whether Functions called now are recorded on the tape."""
    return state.grad_enabled


class _Switch:
    """Set one attribute of ``state`` inside, and restore what it was on the way out.

    Subclasses name the attribute; ``value`` computes the new setting from the old one. As a
    decorator, every call (every step of a generator) enters a copy of its own, so that calls
    in several threads do not restore each other's settings.
    """

    attribute = None

    def __init__(self):
        self._saved = []

    def value(self, outer):
        raise NotImplementedError

    def __enter__(self):
        outer = getattr(state, self.attribute)
        self._saved.append(outer)
        setattr(state, self.attribute, self.value(outer))
        return self

    def __exit__(self, *exc):
        setattr(state, self.attribute, self._saved.pop())
        return False

    def _fresh(self):
        switch = copy.copy(self)
        switch._saved = []
        return switch

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def steps(*args, **kwargs):
                generator = fn(*args, **kwargs)
                with self._fresh():
                    response = generator.send(None)
                while True:  # each step inside the switch; a value sent or an exception thrown passed on
                    try:
                        request = yield response
                    except GeneratorExit:
                        generator.close()
                        raise
                    except BaseException as error:
                        with self._fresh():
                            response = generator.throw(error)
                    else:
                        with self._fresh():
                            response = generator.send(request)
            return steps

        @functools.wraps(fn)
        def call(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)
        return call


class set_grad_enabled(_Switch):
    """Turn recording on or off inside (context manager or decorator)."""

    attribute = "grad_enabled"

    def __init__(self, enabled):
        super().__init__()
        self.enabled = bool(enabled)

    def value(self, outer):
        return self.enabled


def no_grad(fn=None):
    """Record nothing inside: outputs need no gradient and keep no input alive.

    Use as ``with tg.no_grad():`` or as the decorator ``@tg.no_grad()`` (or ``@tg.no_grad``).
    """
    switch = set_grad_enabled(False)
    return switch if fn is None else switch(fn)


def enable_grad(fn=None):
    """Record again inside a ``no_grad`` block (context manager or decorator, as :func:`no_grad`)."""
    switch = set_grad_enabled(True)
    return switch if fn is None else switch(fn)


class scope(_Switch):
    """Tag every Function recorded inside with a name, e.g. a time step.

    Scopes nest into a path: ``with scope("lstm.l0"): with scope("t=3"): ...`` tags the
    Functions with ``"lstm.l0/t=3"``. :func:`tensorgrad.viz.make_dot` draws each scope as
    a cluster.
    """

    attribute = "scope"

    def __init__(self, name):
        super().__init__()
        name = str(name)
        if not name or "/" in name:
            raise ValueError(f"scope: name must be non-empty and contain no '/', got {name!r}")
        self.name = name

    def value(self, outer):
        return self.name if outer is None else f"{outer}/{self.name}"


class step_axis(_Switch):
    """Declare that the outputs of the Functions called inside hold every time step at once,
    step k at index k along ``axis``: the steps whose own scopes are ``t=0``, ``t=1``, … in the
    current scope.

    A recurrent layer computes its input projection x Wᵢₕᵀ + bᵢₕ of shape (T, B, G·H) for
    all steps in one matmul, before the loop that opens ``scope(f"t={t}")``; inside
    ``step_axis(0)``, :func:`detect_anomaly` reports a NaN or Inf in its row t in that
    step's scope (``lstm.l0/t=3`` for the first bad index 3 along the axis) instead of
    the layer's (``lstm.l0``). Only these error messages change: the Functions keep the
    current scope, and graph drawings show them in it.
    """

    attribute = "step_axis"

    def __init__(self, axis):
        super().__init__()
        if not isinstance(axis, int) or axis < 0:
            raise ValueError(f"step_axis: axis must be an int >= 0, got {axis!r}")
        self.axis = axis

    def value(self, outer):
        return self.axis


class detect_anomaly(_Switch):
    """Fail at the first Function whose output or input gradient holds NaN or Inf.

    The error names the Function, its scope (a time step's, inside :class:`step_axis`) and
    the source line where it was recorded. Checking costs a pass over every array, so it is
    off unless asked for.
    """

    attribute = "anomaly"

    def __init__(self, enabled=True):
        super().__init__()
        self.enabled = bool(enabled)

    def value(self, outer):
        return self.enabled


class TraceError(RuntimeError):
    """A function that ``tg.jit`` cannot replay faithfully; the message says what it did."""


class TraceWarning(UserWarning):
    """A value that ``tg.jit``'s trace freezes: the plan replays what the traced run saw."""


def warn_if_traced(what):
    """Warn that ``what`` (a Variable's value turned into a Python value) is frozen by the trace
    in progress, if there is one: the trace records operations, not the Python that uses
    their values, as PyTorch's tracer warns. The warning names the user's line."""
    if state.tracer is not None:
        _, depth = user_frame()
        warnings.warn(f"{what} inside a function that tg.jit is tracing: the plan keeps the value this "
                      "run gives (a branch or a number computed from it is frozen); every replay uses it",
                      TraceWarning, stacklevel=depth)


LIBRARY_PACKAGES = ("tensorgrad", "nn")  # this project's: the user's code is the first frame outside them


def user_frame():
    """(the innermost frame of the calling stack outside the library's packages or None, its depth
    as ``warnings.warn``'s ``stacklevel`` counts from the caller of this function's caller)."""
    frame, depth = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in LIBRARY_PACKAGES:
        frame, depth = frame.f_back, depth + 1
    return frame, depth
