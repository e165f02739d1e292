"""Arrays laid out for a whole sequence: the Functions of each step write into one slice.

A recurrent layer records one fused cell Function per time step. Left to themselves, the
cells would allocate small arrays at every step (outputs, saved gates, gradients), and
stacking the steps' outputs, or summing a weight's gradient over the steps, would copy them
all into one array again. Given a :class:`Step`, they write into slices of (T, ...) arrays
made once for the sequence, as a hand-written BPTT does. How the pieces fit together:

- A layer makes one :class:`StepArrays` per sequence and hands each step's cell its
  :class:`Step`; the cell asks :func:`empty` for its arrays by name ("h", "gates",
  "grad_gates", ...) and gets its step's slice of the (T, ...) array of that name.
- Whoever later receives consecutive slices can join them without a copy: ``stack`` of the
  step outputs and ``unbind``'s backward (:func:`joined`), and a weight's gradient
  Σₜ gₜᵀ hₜ, which :class:`~tensorgrad.autograd.SumOfProducts` computes as one matmul of
  two (T·B, ...) views (:func:`blocks`). Slices are recognised by identity
  (:func:`step_index`), so an array that only looks like a slice is never mistaken for one.
- The Functions of the sequence keep their Steps, and so the StepArrays, alive; when the
  graph is freed, the StepArrays' arrays go to a pool (:class:`_Pool`) for the next
  sequence of the same shapes. Memory freshly taken from the system at every training step
  comes back as page faults (thousands per step, about 8% of a training step of a 128-wide
  RNN, measured against plain ``np.empty``). The pool hands an array out again only when
  nothing refers to it any more, not even a view: an output the user kept stays intact.
"""

import sys
import weakref

import numpy as np

_step_arrays = weakref.WeakValueDictionary()  # id(array) -> its _StepArray, for step_index()


class _Pool:
    """The arrays of step arrays whose sequence is over, for the next sequences.

    A training loop runs the same shapes at every step. Fresh memory at every step would go
    back to the system and come again as pages that fault in and are zero-filled one by one,
    which at the sizes of a character model costs several percent of a training step. The pool
    holds at most as many bytes as the step arrays in use at once have ever taken (the
    oldest arrays go first), and hands an array out again only when nothing refers to it or
    to a view of it.
    """

    def __init__(self):
        self.free = []  # oldest first
        self.free_bytes = self.used_bytes = self.most_used_bytes = 0

    def allocate(self, shape, dtype):
        array, i = None, 0
        while array is None and i < len(self.free):
            if self.free[i].shape != shape or self.free[i].dtype != dtype:
                i += 1
                continue
            candidate = self.free.pop(i)
            self.free_bytes -= candidate.nbytes
            if sys.getrefcount(candidate) == 2:  # `candidate` and the call's argument: no view is alive
                array = candidate
            # else it is still in use (a view outlived its graph): its users will free it
        if array is None:
            array = np.empty(shape, dtype)
        self.used_bytes += array.nbytes
        self.most_used_bytes = max(self.most_used_bytes, self.used_bytes)
        return array

    def release(self, entries):
        """Take back the arrays of a StepArrays that is gone."""
        for entry in entries:
            self.free.append(entry.array)
            self.free_bytes += entry.array.nbytes
            self.used_bytes -= entry.array.nbytes
        while self.free_bytes > self.most_used_bytes:
            self.free_bytes -= self.free.pop(0).nbytes


_pool = _Pool()


class _StepArray:
    """One (T, ...) array with its slices by step, and which slices have been handed out."""

    __slots__ = ("array", "shape", "dtype", "slices", "index", "taken", "__weakref__")

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype = array.shape[1:], array.dtype
        self.slices = list(array)  # the very view objects handed out, for identity checks
        self.index = {id(s): t for t, s in enumerate(self.slices)}
        self.taken = [False] * len(array)
        _step_arrays[id(array)] = self


class StepArrays:
    """Named arrays for ``steps`` steps of a sequence, handed out one slice per step.

    A slice is handed out once: asked for again (a step's gradient in a second backward
    pass over the same graph), it comes from a new array, so that nothing handed out is
    ever overwritten.
    """

    def __init__(self, steps):
        self.steps = steps
        self._arrays = {}
        self._made = []  # every _StepArray made, for the pool when this object is gone
        weakref.finalize(self, _pool.release, self._made)

    def step(self, t):
        """The handle the Functions of step ``t`` allocate through."""
        return Step(self, t)

    def slot(self, name, t, shape, dtype):
        """Step ``t``'s slice, of ``shape`` and ``dtype``, of the array ``name``."""
        entry = self._arrays.get(name)
        if entry is None or entry.taken[t] or entry.shape != shape or entry.dtype != dtype:
            entry = self._arrays[name] = _StepArray(_pool.allocate((self.steps,) + shape, dtype))
            self._made.append(entry)
        entry.taken[t] = True
        return entry.slices[t]


class Step:
    """Step ``t`` of a :class:`StepArrays`."""

    __slots__ = ("arrays", "t")

    def __init__(self, arrays, t):
        self.arrays, self.t = arrays, t


def empty(step, name, shape, dtype):
    """``np.empty(shape, dtype)``, or, for a Function at a :class:`Step`, its slice of the array ``name``."""
    return np.empty(shape, dtype) if step is None else step.arrays.slot(name, step.t, shape, dtype)


def step_index(array):
    """(the step array of which ``array`` is a slice, the slice's step), or (None, None)."""
    entry = _step_arrays.get(id(array.base))
    t = None if entry is None else entry.index.get(id(array))
    return (None, None) if t is None else (entry, t)


def joined(arrays):
    """``np.stack(arrays)`` without a copy: a view, when the (two or more) ``arrays`` are
    consecutive slices, in order, of one step array; else None."""
    if len(arrays) < 2:
        return None
    entry, first = step_index(arrays[0])
    if entry is None:
        return None
    stop = first + len(arrays)
    if stop > len(entry.slices) or any(a is not s for a, s in zip(arrays, entry.slices[first:stop])):
        return None
    return entry.array[first:stop]


def blocks(lefts, rights=None):
    """Pairs (L, R) of 2-d arrays with Σ Lᵀ R = Σᵢ leftsᵢᵀ rightsᵢ, as few as the layout allows.

    Pairs that are consecutive steps of one step array on each side make one pair of views;
    the other pairs are concatenated into one. With ``rights`` None, the pairs are (L, None)
    and stand for the sum of the rows of all leftsᵢ.
    """
    runs = {}  # (left step array, right step array or None) -> [(left step, right step, i)]
    rest = []
    for i, left in enumerate(lefts):
        left_array, left_t = step_index(left)
        right_array, right_t = (None, None) if rights is None else step_index(rights[i])
        if left_array is None or (rights is not None and right_array is None):
            rest.append(i)
        else:
            runs.setdefault((left_array, right_array), []).append((left_t, right_t or 0, i))
    pairs = []
    for (left_array, right_array), items in runs.items():
        items.sort()
        start = 0
        for k in range(1, len(items) + 1):
            if k < len(items) and items[k][0] == items[k - 1][0] + 1 and (
                    right_array is None or items[k][1] == items[k - 1][1] + 1):
                continue  # the run of consecutive steps goes on
            (left_t, right_t, _), n = items[start], k - start
            pairs.append((as_rows(left_array.array[left_t:left_t + n]),
                          None if right_array is None else as_rows(right_array.array[right_t:right_t + n])))
            start = k
    if rest:
        pairs.append((_concatenated([lefts[i] for i in rest]),
                      None if rights is None else _concatenated([rights[i] for i in rest])))
    return pairs


def as_rows(array):
    """``array`` (..., n) as a 2-d array of rows (m, n): itself if it is 2-d already, so that
    a step's slice stays recognisable (see :func:`step_index`)."""
    return array if array.ndim == 2 else array.reshape(-1, array.shape[-1])


def _concatenated(arrays):
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
