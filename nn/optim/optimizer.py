"""The Optimizer base class: parameter groups, per-parameter state and state dicts, as in PyTorch."""

import numpy as np

from nn.module import checked_like
from tensorgrad import Variable, enable_grad


class Optimizer:
    """Updates parameters in place from their gradients; subclasses give the update rule.

    ``params`` is an iterable of Parameters, or of dicts (parameter groups) each holding a
    ``"params"`` list and the hyperparameters in which it differs from ``defaults``.
    ``param_groups`` lists the groups (change ``group["lr"]`` there to schedule the learning
    rate) and ``state`` maps each parameter to its state (running averages, step count),
    created at its first update: arrays shaped like the parameter, and the integer ``step``.
    Updates run on the arrays, in place and in the parameters' dtype.

    A subclass passes its hyperparameters as ``defaults`` (Python floats, bools and tuples of
    floats: group values and loaded ones are cast to these types) and defines
    ``_check(group)`` (raise ValueError for a bad hyperparameter), ``_state_names(group)``
    and ``_update(param, grad, state, group)`` on ndarrays.
    """

    def __init__(self, params, defaults):
        if isinstance(params, Variable):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters or dicts, "
                            "got a single Variable")
        self.defaults = defaults
        self.param_groups = []
        self.state = {}
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group: a dict with ``"params"`` and optional hyperparameters overriding the defaults."""
        name = type(self).__name__
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry")
        params = param_group["params"]
        params = [params] if isinstance(params, Variable) else list(params)
        for p in params:
            if not isinstance(p, Variable) or p.dtype.kind != "f":
                got = f"dtype {p.dtype}" if isinstance(p, Variable) else type(p).__name__
                raise TypeError(f"{name}: can only optimize floating-point Variables, got {got}")
            if not p.is_leaf:
                raise ValueError(f"{name}: cannot optimize a Variable computed by a Function (not a leaf)")
        known = {id(p) for p in self._params()}
        if len({id(p) for p in params}) != len(params) or known & {id(p) for p in params}:
            raise ValueError(f"{name}: some parameters appear more than once")
        group = self._hyperparameters({k: v for k, v in param_group.items() if k != "params"}, partial=True)
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self):
        """Clear the gradient of every parameter (``param.grad = None``)."""
        for p in self._params():
            p.cleargrad()

    def step(self, closure=None):
        """Update every parameter that has a gradient; ``closure`` (optional) recomputes the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data.astype(p.dtype, copy=False)
                self._update(p.data, grad, self.state.setdefault(p, {}), group)
        return loss

    # ------------------------------------------------------------------ state dicts
    def state_dict(self):
        """The optimizer's state as nested dicts of ndarrays and numbers (``nn.save`` writes it).

        ``{"state": {"<i>": {...}}, "param_groups": {"<g>": {hyperparameters, "params": indices}}}``,
        parameters numbered in group order, as in PyTorch; the arrays are copies.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {str(index[id(p)]): {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in s.items()}
                 for p, s in sorted(self.state.items(), key=lambda item: index[id(item[0])]) if s}
        groups = {}
        for g, group in enumerate(self.param_groups):
            saved = {k: np.array(v) if isinstance(v, tuple) else v for k, v in group.items() if k != "params"}
            saved["params"] = np.array([index[id(p)] for p in group["params"]], dtype=np.int64)
            groups[str(g)] = saved
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict` (for the same parameters, in the same groups).

        Everything is checked before anything changes: the groups and their sizes, the
        hyperparameters, and each parameter's state names, shapes and values. Arrays are
        copied and cast to the parameter's dtype.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise KeyError(f"{name}.load_state_dict: expected a dict with the keys 'state' and "
                           "'param_groups'")
        saved_groups = _numbered(state_dict["param_groups"], "param_groups", name)
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: {len(saved_groups)} parameter groups saved, but the "
                             f"optimizer has {len(self.param_groups)}")
        groups, by_index = [], {}
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if not isinstance(saved, dict):
                raise TypeError(f"{name}.load_state_dict: parameter group {g} must be a dict, got "
                                f"{type(saved).__name__}")
            indices = np.asarray(saved.get("params", ())).reshape(-1)
            if len(indices) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: group {g} has {len(indices)} parameters saved, "
                                 f"but {len(group['params'])} in the optimizer")
            hyper = self._hyperparameters({k: v for k, v in saved.items() if k != "params"}, partial=False)
            for i, p in zip(indices.tolist(), group["params"], strict=True):
                by_index[i] = (p, hyper)
            groups.append(hyper)
        state = {}
        for i, saved in _numbered(state_dict["state"], "state", name, sparse=True).items():
            if i not in by_index:
                raise KeyError(f"{name}.load_state_dict: state saved for parameter {i}, which no group holds")
            p, hyper = by_index[i]
            state[p] = self._checked_state(saved, p, hyper, i)
        for group, hyper in zip(self.param_groups, groups, strict=True):
            group.update(hyper)
        self.state = state

    # ------------------------------------------------------------------ helpers
    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def _hyperparameters(self, given, partial):
        """``given`` completed from the defaults (if ``partial``), as Python numbers, and checked."""
        name = type(self).__name__
        unknown = set(given) - set(self.defaults)
        missing = set() if partial else set(self.defaults) - set(given)
        if unknown or missing:
            raise KeyError(f"{name}: unknown hyperparameters {sorted(unknown)}, missing {sorted(missing)}")
        group = {}
        for key, default in self.defaults.items():
            value = given.get(key, default)
            try:
                group[key] = (tuple(float(v) for v in value) if isinstance(default, tuple)
                              else type(default)(value))
            except (TypeError, ValueError):
                raise TypeError(f"{name}: {key} must be a {type(default).__name__}, got {value!r}") from None
        self._check(group)
        return group

    def _checked_state(self, saved, p, group, i):
        """A parameter's saved state, checked against what this optimizer keeps, as new arrays."""
        name = type(self).__name__
        expected = set(self._state_names(group))
        if not isinstance(saved, dict) or set(saved) != expected:
            got = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
            raise KeyError(f"{name}.load_state_dict: state of parameter {i} has entries {got}, "
                           f"expected {sorted(expected)}")
        state = {}
        for key, value in saved.items():
            array = np.asarray(value)
            if key == "step":
                if array.ndim != 0 or array.dtype.kind not in "iu":
                    raise TypeError(f"{name}.load_state_dict: step of parameter {i} must be an integer, "
                                    f"got {value!r}")
                state[key] = int(array)
                continue
            state[key] = checked_like(array, p, f"{name}.load_state_dict: {key} of parameter {i}")
        return state

    def _nonnegative(self, group, *keys):
        for key in keys:
            if not group[key] >= 0.0:
                raise ValueError(f"{type(self).__name__}: invalid {key} {group[key]} (must be >= 0)")

    def _check(self, group):
        raise NotImplementedError

    def _state_names(self, group):
        raise NotImplementedError

    def _update(self, param, grad, state, group):
        raise NotImplementedError

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g}")
            lines.extend(f"    {k}: {v}" for k, v in group.items() if k != "params")
        return "\n".join(lines + [")"])


def _numbered(entries, what, name, sparse=False):
    """A dict keyed by "0", "1", ... (or ints) as a list (or, if ``sparse``, a dict by int)."""
    if not isinstance(entries, dict):
        raise TypeError(f"{name}.load_state_dict: {what} must be a dict, got {type(entries).__name__}")
    try:
        numbered = {int(k): v for k, v in entries.items()}
    except ValueError:
        raise KeyError(f"{name}.load_state_dict: {what} must be keyed by indices, got "
                       f"{sorted(map(str, entries))}") from None
    if sparse:
        return numbered
    if sorted(numbered) != list(range(len(numbered))):
        raise KeyError(f"{name}.load_state_dict: {what} must be numbered 0..{len(numbered) - 1}")
    return [numbered[k] for k in range(len(numbered))]
