"""Module and Parameter: the containers networks are built from, as in PyTorch."""

from collections import namedtuple

import numpy as np

from tensorgrad import Variable

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Variable):
    """A Variable that a Module registers as one of its learnable parameters."""

    __slots__ = ()

    def __init__(self, data, name=None, requires_grad=True):
        data = data.data if isinstance(data, Variable) else data
        super().__init__(np.asarray(data), name=name, requires_grad=requires_grad)
        if self.dtype.kind != "f":
            raise TypeError(f"Parameter: data must be floating-point, got dtype {self.dtype}")

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and network.

    Assigning a :class:`Parameter` or a Module to an attribute registers it, in assignment
    order; ``named_parameters`` then gives PyTorch's dotted names (``"layers.0.weight"``).
    Subclasses define ``forward``; calling the module calls it.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call Module.__init__() before assigning "
                                 f"attribute {name!r}")
        params, modules = self._parameters, self._modules
        params.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        object.__setattr__(self, name, value)

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
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal
    def named_children(self):
        yield from self._modules.items()

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix=""):
        """Every module in the tree, depth first, with dotted names ("" for self)."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) for every parameter, in registration order, once each."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self):
        for _, param in self.named_parameters():
            yield param

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """{dotted name: a copy of the parameter's array}."""
        return {name: param.data.copy() for name, param in self.named_parameters()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters, cast to each parameter's dtype.

        Every value is checked first (names when ``strict``, shapes, floating-point
        values); on any error nothing is changed. Returns the missing and unexpected keys.
        """
        own = dict(self.named_parameters())
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(f"load_state_dict: {type(self).__name__} state dict does not match: "
                               f"missing keys {missing}, unexpected keys {unexpected}")
        updates = []
        for name, param in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Variable) else value
            if not isinstance(value, np.ndarray | np.generic):
                raise TypeError(f"load_state_dict: {name!r} must be an ndarray, got {type(value).__name__}")
            updates.append((param, checked_like(value, param, f"load_state_dict: {name!r}")))
        for param, array in updates:
            param.data = array
        return IncompatibleKeys(missing, unexpected)

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
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def checked_like(value, param, what):
    """``value`` as a new array of ``param``'s dtype, after checking it holds floating-point
    values of ``param``'s shape; ``what`` starts the error message."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{what} must hold floating-point values, got dtype {array.dtype}")
    if array.shape != param.shape:
        raise ValueError(f"{what} has shape {array.shape}, but the parameter has shape {param.shape}")
    return array.astype(param.dtype)
