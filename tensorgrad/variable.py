"""The Variable: an ndarray with a gradient and a link to the Function that created it."""

import math

import numpy as np

from tensorgrad.modes import warn_if_traced

_NUMERIC_KINDS = "biuf"
_new_object = object.__new__


def data_of(value):
    """The ndarray of a Variable, or ``value`` as an ndarray: an ndarray is itself (not its
    ``.data``, a buffer; ``tg.jit`` knows a traced array by its identity)."""
    return value.data if isinstance(value, Variable) else np.asarray(value)


def as_array(value, like=None):
    """Turn a non-Variable operand into an ndarray.

    A Python scalar, NumPy scalar or 0-d array next to a floating Variable ``like`` takes
    its dtype, so ``x * 0.5`` keeps a float32 ``x`` in float32. Larger arrays keep their
    own dtype and follow NumPy's promotion rules.
    """
    if like is not None and type(value) in (int, float) and like.data.dtype.kind == "f":
        return np.asarray(value, like.data.dtype)  # the common case (x * 0.5), in one step
    array = np.asarray(value)
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"expected numeric data, got {type(value).__name__} of dtype {array.dtype}")
    if like is not None and array.ndim == 0 and like.dtype.kind == "f":
        array = array.astype(like.dtype, copy=False)
    return array


class _HookHandle:
    """Returned by :meth:`Variable.register_hook`; ``remove()`` unregisters the hook."""

    __slots__ = ("_hooks", "_key")

    def __init__(self, hooks, key):
        self._hooks = hooks
        self._key = key

    def remove(self):
        self._hooks.pop(self._key, None)


class Variable:
    """A node of the computation graph holding ``data`` (an ndarray) and its ``grad``.

    ``requires_grad`` (default True) is honoured for floating-point data only: integer and
    boolean arrays, such as class indices, never need a gradient. An ndarray is used as it
    is (no copy, dtype kept); Python numbers and lists become float32 or int64 arrays.
    """

    __slots__ = ("data", "grad", "creator", "name", "requires_grad", "_hooks", "_retains_grad",
                 "__weakref__")
    __array_ufunc__ = None  # make ``ndarray + Variable`` call Variable.__radd__

    def __init__(self, data, name=None, requires_grad=True):
        if isinstance(data, Variable):
            raise TypeError("Variable: data is already a Variable; use .detach() to get a new leaf")
        if isinstance(data, np.ndarray):
            array = data
        else:
            try:
                array = np.asarray(data)
            except ValueError as error:  # ragged nested lists
                raise TypeError(f"Variable: data is not a rectangular numeric array: {error}") from None
            if array.dtype == np.float64 and not isinstance(data, np.generic):
                array = array.astype(np.float32)
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"Variable: data must be numeric, got {type(data).__name__} "
                            f"of dtype {array.dtype}")
        self.data = array
        self.grad = None
        self.creator = None
        self.name = name
        self.requires_grad = bool(requires_grad) and array.dtype.kind == "f"
        self._hooks = None
        self._retains_grad = False

    @classmethod
    def _result(cls, data, requires_grad):
        """Wrap a Function's output array without the checks of ``__init__`` (hot path)."""
        v = _new_object(cls)
        v.data = data if type(data) is np.ndarray else np.asarray(data)
        v.grad = v.creator = v.name = v._hooks = None
        v.requires_grad = requires_grad
        v._retains_grad = False
        return v

    # ----------------------------------------------------------------- array facts
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self):
        return self.creator is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, prefix="Variable(", separator=", ")
        extra = f", name={self.name!r}" if self.name else ""
        return f"Variable({body}, dtype={self.dtype}{extra})"

    def item(self):
        """The value of a one-element Variable as a Python number."""
        warn_if_traced("item()")
        return self._value("item")

    def _value(self, op):
        if self.size != 1:
            raise ValueError(f"{op}: only a one-element Variable has a value, this one has shape "
                             f"{self.shape} ({self.size} elements)")
        return self.data.item()

    def numpy(self):
        """The data as an ndarray (shared, not copied)."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(v)``: the data (not recorded; gradients do not flow through NumPy)."""
        if copy is False and dtype is not None and np.dtype(dtype) != self.dtype:
            raise ValueError(f"__array__: cannot give dtype {np.dtype(dtype)} without a copy of "
                             f"the {self.dtype} data")
        array = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return array.copy() if copy else array

    def __float__(self):
        warn_if_traced("float(Variable)")
        return float(self._value("float"))

    def __int__(self):
        warn_if_traced("int(Variable)")
        return int(self._value("int"))

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"bool: the truth value of a Variable of shape {self.shape} is "
                             "ambiguous; use (v != 0).data.any() or .all()")
        warn_if_traced("bool(Variable)")
        return bool(self.data.item())

    # ----------------------------------------------------------------- gradients
    def backward(self, grad=None, *, retain_grad=False, create_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that needs it.

        ``grad`` is the gradient of some scalar with respect to ``self`` (default: 1 for a
        one-element output). ``create_graph=True`` records the backward pass, so the
        gradients can be differentiated again. ``retain_grad=True`` keeps the gradients of
        intermediate Variables too.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this Variable does not require a gradient (its inputs "
                               "need none, or it was computed under no_grad)")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward: output of shape {self.shape} is not a scalar; "
                                   "pass grad= with that shape")
            grad = Variable._result(np.ones_like(self.data), False)
        else:
            grad = grad if isinstance(grad, Variable) else Variable._result(as_array(grad, self), False)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape}, but the output has "
                                 f"shape {self.shape}")
        autograd.backward([self], [grad], retain_grad=retain_grad, create_graph=create_graph)

    def cleargrad(self):
        """Forget the accumulated gradient."""
        self.grad = None

    def retain_grad(self):
        """Keep this intermediate Variable's gradient in ``.grad`` on later backward passes."""
        self._retains_grad = True

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this Variable's gradient has been computed.

        If the hook returns a Variable, it replaces the gradient (for leaves, before it is
        accumulated into ``.grad``; for intermediates, before it flows further back).
        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not callable(hook):
            raise TypeError(f"register_hook: expected a callable, got {type(hook).__name__}")
        if self._hooks is None:
            self._hooks = {}
        key = object()
        self._hooks[key] = hook
        return _HookHandle(self._hooks, key)

    def detach(self):
        """A new leaf sharing this Variable's data, cut off from the graph."""
        return Variable._result(self.data, False)

    def unchain_backward(self):
        """Cut every creator link behind this Variable, in place.

        The Variable becomes a leaf that keeps ``requires_grad``, and the graph behind it
        can be freed: the hidden state carried from one window of truncated BPTT to the next.
        """
        functions = autograd.reachable_functions([self])
        self.creator = None
        for function in functions:
            for x in function.inputs:
                x.creator = None
            for ref in function.outputs:  # other outputs of a cut Function lose it too
                y = ref()
                if y is not None:
                    y.creator = None
            function.inputs = ()

    # ----------------------------------------------------------------- shape and reductions
    @property
    def T(self):
        return F.transpose(self)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return F.reshape(self, tuple(shape))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return F.transpose(self, tuple(axes) if axes else None)

    def sum(self, axis=None, keepdims=False):
        return F.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return F.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return F.max(self, axis, keepdims)

    def squeeze(self, axis=None):
        """Drop axes of length 1: all of them, or those of ``axis`` that have length 1 (as
        PyTorch, an axis of another length is kept)."""
        axes = range(self.ndim) if axis is None else _axes(axis, self.ndim, "squeeze")
        drop = {a for a in axes if a < self.ndim and self.shape[a] == 1}
        return F.reshape(self, tuple(n for a, n in enumerate(self.shape) if a not in drop))

    def unsqueeze(self, axis):
        """Insert an axis of length 1 at ``axis`` (in -ndim-1 .. ndim, as PyTorch)."""
        (axis,) = _axes(axis, self.ndim + 1, "unsqueeze")
        return F.reshape(self, self.shape[:axis] + (1,) + self.shape[axis:])

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge the axes ``start_dim`` .. ``end_dim`` into one (PyTorch's ``flatten``)."""
        if self.ndim == 0:
            return F.reshape(self, (1,))
        start, end = _axes((start_dim, end_dim), self.ndim, "flatten", keep_order=True)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for shape {self.shape}")
        merged = math.prod(self.shape[start:end + 1])
        return F.reshape(self, self.shape[:start] + (merged,) + self.shape[end + 1:])

    def ravel(self):
        """All elements in one axis (NumPy's ``ravel``)."""
        return F.reshape(self, (-1,))

    def abs(self):
        return F.abs(self)

    def exp(self):
        return F.exp(self)

    def log(self):
        return F.log(self)

    def sqrt(self):
        return F.sqrt(self)

    def tanh(self):
        return F.tanh(self)

    def sigmoid(self):
        return F.sigmoid(self)

    def relu(self):
        return F.relu(self)

    def astype(self, dtype):
        return F.astype(self, dtype)

    def __getitem__(self, index):
        return F.getitem(self, index)

    # ----------------------------------------------------------------- operators
    def __add__(self, other):
        return F.add(self, other)

    def __radd__(self, other):
        return F.add(other, self)

    def __sub__(self, other):
        return F.sub(self, other)

    def __rsub__(self, other):
        return F.sub(other, self)

    def __mul__(self, other):
        return F.mul(self, other)

    def __rmul__(self, other):
        return F.mul(other, self)

    def __truediv__(self, other):
        return F.div(self, other)

    def __rtruediv__(self, other):
        return F.div(other, self)

    def __pow__(self, other):
        return F.pow(self, other)

    def __rpow__(self, other):
        return F.pow(other, self)

    def __matmul__(self, other):
        return F.matmul(self, other)

    def __rmatmul__(self, other):
        return F.matmul(other, self)

    def __mod__(self, other):
        return F.remainder(self, other)

    def __rmod__(self, other):
        return F.remainder(other, self)

    def __neg__(self):
        return F.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return F.abs(self)

    # Comparisons are not differentiable: a boolean Variable that needs no gradient, as in
    # PyTorch. ``==`` compares values; hashing stays by identity (the engine keeps Variables
    # in sets and dicts, which compare hashes first, and never compares Variables with ==).
    def __eq__(self, other):
        return _compare(np.equal, "eq", "==", self, other)

    def __ne__(self, other):
        return _compare(np.not_equal, "ne", "!=", self, other)

    def __lt__(self, other):
        return _compare(np.less, "lt", "<", self, other)

    def __le__(self, other):
        return _compare(np.less_equal, "le", "<=", self, other)

    def __gt__(self, other):
        return _compare(np.greater, "gt", ">", self, other)

    def __ge__(self, other):
        return _compare(np.greater_equal, "ge", ">=", self, other)

    __hash__ = object.__hash__  # Variables are graph nodes: identity, not value


def _axes(axis, ndim, op, keep_order=False):
    """``axis`` (an int or a sequence of them) as non-negative axes of ``ndim`` dimensions."""
    given = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in given:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise IndexError(f"{op}: axis {a} is out of range for {ndim} dimensions")
    axes = tuple(int(a) % max(ndim, 1) for a in given)
    return axes if keep_order else tuple(sorted(set(axes)))


def _compare(ufunc, op, symbol, x, other):
    """``x <symbol> other`` elementwise, as a boolean Variable without gradient (the output of
    the Function ``op``)."""
    if other is None:  # e.g. list.count(None) over gradients: at once, no exception raised
        return NotImplemented
    if not isinstance(other, Variable):
        try:
            other = as_array(other, x)
        except TypeError:  # None, a string, any other object: Python falls back to identity
            return NotImplemented  # for == and !=, and raises a TypeError for <
    try:
        np.broadcast_shapes(x.shape, other.shape)
    except ValueError:
        raise ValueError(f"{symbol}: shapes {x.shape} and {other.shape} do not broadcast "
                         "together") from None
    return F.Compare(ufunc, op)(x, other)


def as_variable(value, like=None):
    """A Variable for ``value``: itself if it is one, else a constant (no gradient)."""
    if isinstance(value, Variable):
        return value
    return Variable._result(as_array(value, like), False)


# The methods above call the engine and the primitive Functions, which are defined on top
# of Variable; importing them last breaks the cycle without patching methods onto the class.
from tensorgrad import autograd  # noqa: E402
from tensorgrad import functions as F  # noqa: E402
