"""The arrays a ``tg.jit`` plan allocates itself, kept from one call to the next.

A replay's arrays come from the NumPy operations of its steps, new at every call, and from
the few a plan step allocates itself to fill in place: the rows hₜ of a recurrence, the
∂L/∂bₜ of its BPTT, the zero gradients of :class:`~tensorgrad.jit_steps.Zeros`. Those are
the largest arrays of a step, and taking them afresh at every call costs more than their
arithmetic where memory comes back from the system as new pages (malloc gives large freed
blocks back). Eager mode cannot keep them: it does not know that the next call will want the
same arrays. A plan does, so each place that allocates one keeps a :class:`Buffer`.

A buffer hands its array out again only when nothing else refers to it: no slot of a
replay, no frame kept for a backward not yet run, no Variable, gradient or view a caller
still holds (a view refers to the array as its ``base``). Otherwise (two replays alive at
once, an output kept) it hands out a new array and keeps that one instead, so what anyone
still holds is never overwritten.
"""

import sys

import numpy as np


class Buffer:
    """One array a plan step fills at every call: the last call's array when nobody holds it."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def take(self, shape, dtype):
        """An array of ``shape`` and ``dtype`` with nothing written in it that anyone still reads."""
        if (self.array is None or sys.getrefcount(self.array) > _ONLY_THE_BUFFER
                or self.array.shape != shape or self.array.dtype != dtype):
            self.array = np.empty(shape, dtype)
        return self.array

    def __repr__(self):
        kept = "nothing" if self.array is None else f"{self.array.shape} {self.array.dtype}"
        return f"Buffer({kept})"


def _references_when_only_the_buffer_holds_it():
    """What ``sys.getrefcount`` counts in ``take`` for an array that only the buffer holds (the
    buffer's slot and the call's argument; measured, as interpreters count differently)."""
    buffer = Buffer()
    buffer.array = np.empty(0)
    return sys.getrefcount(buffer.array)


_ONLY_THE_BUFFER = _references_when_only_the_buffer_holds_it()
