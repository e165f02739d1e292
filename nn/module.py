"""Module and Parameter: the containers networks are built from, as in PyTorch."""

from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from tensorgrad import Variable

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Variable):
    """A Variable that a Module registers as one of its learnable parameters.

    ``data`` is taken as :class:`Variable` takes it (Python floats and lists become float32,
    arrays keep their dtype), or a Variable's array; it must be floating-point.
    """

    __slots__ = ()

    def __init__(self, data, name=None, requires_grad=True):
        data = data.data if isinstance(data, Variable) else data
        super().__init__(data, name=name, requires_grad=requires_grad)
        if self.dtype.kind != "f":
            raise TypeError(f"Parameter: data must be floating-point, got dtype {self.dtype}")

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and network.

    Assigning a :class:`Parameter` or a Module to an attribute registers it, in assignment
    order; ``named_parameters`` then gives PyTorch's dotted names (``"layers.0.weight"``).
    Subclasses define ``forward``; calling the module calls it, between the hooks
    registered with :meth:`register_forward_pre_hook` and :meth:`register_forward_hook`.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        """Set the attribute, registering a Parameter or a Module, by PyTorch's rules.

        A registered parameter may be replaced by a Parameter, or by None (it stays
        registered, as an absent bias does); a submodule by a Parameter, a Module, or None
        (which unregisters it). Anything else over either is a TypeError: an array assigned
        over ``weight`` would otherwise drop it from ``parameters()`` and the state dict.
        """
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call Module.__init__() before assigning "
                                 f"attribute {name!r}")
        params, modules = self._parameters, self._modules
        if isinstance(value, Parameter):
            modules.pop(name, None)
            params[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__!r} as "
                                f"parameter {name!r} (a Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            modules[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__!r} as "
                                f"child module {name!r} (a Module or None expected)")
            del modules[name]
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        """Delete the attribute, and unregister it if it is a parameter or a submodule."""
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None, for an absent bias) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self._modules.pop(name, None)
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def add_module(self, name, module):
        """Register ``module`` as a child under ``name`` (names such as ``"0"`` allowed)."""
        if not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._parameters.pop(name, None)
        self._modules[name] = module
        object.__setattr__(self, name, module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} defines no forward")

    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks or self._forward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args, kwargs):
        for hook in tuple(self._forward_pre_hooks.values()):
            replaced = hook(self, args)
            if replaced is not None:
                replaced = replaced if isinstance(replaced, tuple) else (replaced,)
                _check_replacement(self, "forward pre-hook", hook, "the inputs", args, replaced)
                args = replaced
        output = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            replaced = hook(self, args, output)
            if replaced is not None:
                _check_replacement(self, "forward hook", hook, "the output", output, replaced)
                output = replaced
        return output

    # ------------------------------------------------------------------ hooks
    def register_forward_pre_hook(self, hook):
        """Call ``hook(module, args)`` before every ``forward``; a result that is not None
        replaces the positional arguments (a tuple, or one value for a single argument).

        As in PyTorch; unlike PyTorch, a replacement must keep each array argument's shape
        (a clear error names the hook otherwise). Returns a handle whose ``remove()``
        unregisters the hook.
        """
        return _register(self, "forward pre-hook", self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """Call ``hook(module, args, output)`` after every ``forward``; a result that is not
        None replaces the output (with the same structure and shapes). Returns a handle
        whose ``remove()`` unregisters the hook."""
        return _register(self, "forward hook", self._forward_hooks, hook)

    # ------------------------------------------------------------------ traversal
    def named_children(self):
        yield from self._modules.items()

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix="", remove_duplicate=True):
        """Every module in the tree, depth first, with dotted names ("" for self).

        A module reached by several paths (shared by two parents) comes once, under its first
        name, unless ``remove_duplicate`` is False; then it comes under each. Either way a
        module is not entered again beneath itself (a child holding its parent).
        """
        stack = [(prefix, self, ())]
        seen = set()
        while stack:
            name, module, ancestors = stack.pop()
            if id(module) in (seen if remove_duplicate else ancestors):
                continue
            seen.add(id(module))
            yield name, module
            path = (*ancestors, id(module))
            children = [(f"{name}.{child_name}" if name else child_name, child, path)
                        for child_name, child in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def apply(self, fn):
        """Call ``fn(module)`` on every module of the tree, children before their parent
        (as PyTorch, e.g. ``model.apply(init_weights)``); returns self."""
        stack = [(self, False)]
        seen = set()
        while stack:
            module, expanded = stack.pop()
            if expanded:
                fn(module)
            elif id(module) not in seen:
                seen.add(id(module))
                stack.append((module, True))
                stack.extend((child, False) for child in reversed(module._modules.values()))
        return self

    def named_parameters(self, prefix="", remove_duplicate=True):
        """(dotted name, Parameter) for every parameter, in registration order.

        A parameter shared by several modules (tied weights, ``head.weight = embed.weight``)
        comes once, under its first name, unless ``remove_duplicate`` is False; then it comes
        under each of its names, as in :meth:`state_dict`.
        """
        seen = set()
        for module_name, module in self.named_modules(prefix, remove_duplicate):
            for name, param in module._parameters.items():
                if param is None or (remove_duplicate and id(param) in seen):
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self):
        for _, param in self.named_parameters():
            yield param

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """{dotted name: a copy of the parameter's array}, a shared parameter under each of its
        names (as in PyTorch, so that tied models' state dicts load in either library)."""
        return {name: param.data.copy() for name, param in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters, cast to each parameter's dtype.

        Every value is checked first (names when ``strict``, shapes, floating-point
        values); on any error nothing is changed. Returns the missing and unexpected keys.

        A shared parameter is expected under each of its names (see :meth:`state_dict`). Where
        PyTorch copies each name's value in turn, the last one winning, the values here must
        be equal: different ones (say, from an untied model) are a ValueError, not one of them
        silently dropped.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: {type(self).__name__} takes a state dict (a mapping of "
                            f"names to arrays), got {type(state_dict).__name__}")
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(f"load_state_dict: {type(self).__name__} state dict does not match: "
                               f"missing keys {missing}, unexpected keys {unexpected}")
        updates = {}  # id(param): (its first name, param, new array)
        for name, param in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Variable) else value
            if not isinstance(value, np.ndarray | np.generic):
                raise TypeError(f"load_state_dict: {name!r} must be an ndarray, got {type(value).__name__}")
            array = checked_like(value, param, f"load_state_dict: {name!r}")
            if id(param) not in updates:
                updates[id(param)] = (name, param, array)
                continue
            first, _, kept = updates[id(param)]
            if not np.array_equal(array, kept, equal_nan=True):
                raise ValueError(f"load_state_dict: {first!r} and {name!r} name one parameter shared "
                                 f"in {type(self).__name__}, but the state dict gives them different values")
        for _, param, array in updates.values():
            param.data = array
        return IncompatibleKeys(missing, unexpected)

    def requires_grad_(self, requires_grad=True):
        """Switch gradients of every parameter on or off (e.g. to freeze a layer); returns self."""
        for param in self.parameters():
            param.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self):
        """Clear the gradient of every parameter."""
        for param in self.parameters():
            param.cleargrad()

    def train(self, mode=True):
        """Set training mode (dropout active) on this module and every descendant."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Set evaluation mode: ``train(False)``."""
        return self.train(False)

    def to(self, dtype):
        """Cast every parameter to ``dtype`` in place (the Parameters stay the same objects)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"to: parameters must stay floating-point, got dtype {dtype}")
        for param in self.parameters():
            param.data = param.data.astype(dtype)
            param.cleargrad()
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # ------------------------------------------------------------------ printing
    def extra_repr(self):
        """The module's own settings, printed inside its parentheses (as in PyTorch)."""
        return ""

    def __repr__(self):
        """PyTorch's layout: ``Name(settings)``, or one line per setting and child."""
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({name}): " + repr(child).replace("\n", "\n  ")
                    for name, child in self._modules.items()]
        if not children and len(lines) <= 1:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines + children) + "\n)"


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``remove()`` unregisters the hook."""

    def __init__(self, hooks, key):
        self._hooks = hooks
        self._key = key

    def remove(self):
        self._hooks.pop(self._key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def _register(module, kind, hooks, hook):
    if not callable(hook):
        raise TypeError(f"{type(module).__name__}: a {kind} must be callable, got {type(hook).__name__}")
    key = object()
    hooks[key] = hook
    return RemovableHandle(hooks, key)


def _check_replacement(module, kind, hook, what, old, new):
    """A hook's replacement values ``new`` for ``old`` must match them in structure and shapes."""
    name = f"{type(module).__name__}: {kind} {getattr(hook, '__name__', repr(hook))}"
    pending = [(what, old, new)]
    while pending:
        where, a, b = pending.pop()
        if isinstance(a, tuple) and isinstance(b, tuple):
            if len(b) != len(a):
                raise ValueError(f"{name} returned {len(b)} values for the {len(a)} of {where}")
            pending.extend((f"{where}[{i}]", x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)))
        elif isinstance(a, tuple) or isinstance(b, tuple):
            raise ValueError(f"{name} returned a {type(b).__name__} for {where}, a {type(a).__name__}")
        elif hasattr(a, "shape") and getattr(b, "shape", None) != a.shape:
            raise ValueError(f"{name} returned shape {getattr(b, 'shape', type(b).__name__)} for "
                             f"{where}, which has shape {a.shape}")


def checked_like(value, param, what):
    """``value`` as a new array of ``param``'s dtype, after checking it holds floating-point
    values of ``param``'s shape; ``what`` starts the error message."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{what} must hold floating-point values, got dtype {array.dtype}")
    if array.shape != param.shape:
        raise ValueError(f"{what} has shape {array.shape}, but the parameter has shape {param.shape}")
    return array.astype(param.dtype)
