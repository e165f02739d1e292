"""The engine: backward over the tape, gradient accumulation, retained and intermediate
gradients, hooks, higher-order gradients, detach / unchain_backward, ``tg.grad`` and graphs
far too large for recursion or for a quadratic backward pass."""

import gc
import weakref

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.functions as F


def leaf(values, name=None):
    return tg.Variable(np.asarray(values, dtype=np.float64), name=name)


# ------------------------------------------------------------------------- backward
def test_backward_reaches_every_leaf_through_shared_subexpressions():
    x, w = leaf([0.5, -1.0, 2.0], "x"), leaf([1.5, 0.25, -0.5], "w")
    h = x * w           # used twice below: its gradient must be complete before it flows on
    y = (h * h + F.tanh(h)).sum()
    y.backward()
    hv = x.data * w.data
    dh = 2 * hv + 1 - np.tanh(hv) ** 2
    np.testing.assert_allclose(x.grad.data, dh * w.data, rtol=1e-12)
    np.testing.assert_allclose(w.grad.data, dh * x.data, rtol=1e-12)
    assert h.grad is None  # intermediate gradients are not kept by default


def test_backward_with_explicit_gradient():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    gy = np.array([[1.0, 0.0], [0.5, -1.0]])
    y.backward(gy)
    np.testing.assert_allclose(x.grad.data, 2 * x.data * gy)


def test_backward_of_a_leaf_itself():
    x = leaf(3.0)
    x.backward()
    assert x.grad.data == 1.0


def test_leaf_gradients_are_arrays_of_their_own():
    # a + b hands the same gradient to both; sum's backward is a read-only broadcast view.
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((2, 3)))
    (a + b).sum().backward()
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data *= 3.0  # in place, as an optimizer or a clipping routine may do
    np.testing.assert_array_equal(a.grad.data, 3.0)
    np.testing.assert_array_equal(b.grad.data, 1.0)


def test_gradients_accumulate_until_cleared():
    x = leaf([1.0, -2.0])
    for _ in range(3):
        (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 3 * 2 * x.data)
    x.cleargrad()
    assert x.grad is None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)


def test_a_failing_backward_changes_no_gradient():
    class Broken(tg.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            raise ArithmeticError("deliberately broken")

    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (x * w).sum().backward()
    before_x, before_w = x.grad.data.copy(), w.grad.data.copy()
    with pytest.raises(ArithmeticError):
        # Recorded after Broken, x * w is back-propagated first: w's gradient is ready, not stored.
        (Broken()(x) + x * w).sum().backward()
    np.testing.assert_array_equal(x.grad.data, before_x)
    np.testing.assert_array_equal(w.grad.data, before_w)


def test_multiple_output_function_with_an_unused_output():
    x = leaf(np.arange(6.0))
    first, second, third = F.split(x, 3)
    (first * 2).sum().backward()  # the other outputs get no gradient: zeros stand in for them
    np.testing.assert_array_equal(x.grad.data, [2, 2, 0, 0, 0, 0])
    x.cleargrad()
    del first, third  # dead outputs: the engine must not need them
    (second * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0, 0, 3, 3, 0, 0])


def test_inputs_that_need_no_gradient_get_none():
    x = leaf([1.0, 2.0])
    c = tg.Variable(np.array([3.0, 4.0]), requires_grad=False)
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad.data, c.data)


def test_integer_data_never_requires_grad():
    ids = tg.Variable(np.array([0, 2, 2]))
    assert not ids.requires_grad and ids.dtype == np.int64
    x = leaf([1.0, 2.0, 3.0])
    x[ids].sum().backward()  # an integer Variable indexes like its array
    np.testing.assert_array_equal(x.grad.data, [1.0, 0.0, 2.0])


# ------------------------------------------------------------------------- retained gradients
def test_retain_grad_keeps_every_intermediate_gradient():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    y = (h * h).sum()
    y.backward(retain_grad=True)
    np.testing.assert_allclose(h.grad.data, 2 * h.data)
    assert y.grad.data == 1.0
    np.testing.assert_allclose(x.grad.data, 2 * h.data * 3)


def test_retain_grad_method_keeps_only_that_gradient():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    g = h * h
    h.retain_grad()
    g.sum().backward()
    np.testing.assert_allclose(h.grad.data, 2 * h.data)
    assert g.grad is None
    g.sum().backward()  # retained gradients accumulate too
    np.testing.assert_allclose(h.grad.data, 4 * h.data)


# ------------------------------------------------------------------------- hooks
def test_hook_on_a_leaf_sees_the_gradient_and_can_replace_it():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.data.copy()))
    handle = x.register_hook(lambda g: g * 10.0)
    (x * x).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * x.data)
    np.testing.assert_allclose(x.grad.data, 20 * x.data)
    handle.remove()
    x.cleargrad()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)
    assert len(seen) == 2
    handle.remove()  # removing twice is harmless


def test_a_hook_that_changes_the_gradients_shape_is_named_in_the_error():
    def summed(g):
        return g.sum()

    x = leaf([1.0, 2.0, 3.0])
    x.register_hook(summed)
    with pytest.raises(RuntimeError, match=r"register_hook: the hook '.*summed' returned a gradient of "
                                           r"shape \(\) for a Variable of shape \(3,\)"):
        (x * x).sum().backward()


def test_hook_on_an_intermediate_replaces_the_gradient_that_flows_back():
    x = leaf([1.0, -2.0])
    h = x * 3.0
    seen = []

    def hook(g):
        seen.append(g.data.copy())
        return g * 0.5

    handle = h.register_hook(hook)
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * h.data)
    np.testing.assert_allclose(x.grad.data, 0.5 * 2 * h.data * 3)
    assert h.grad is None  # a hook does not retain the gradient
    handle.remove()
    x.cleargrad()
    (h * h).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(x.grad.data, 2 * h.data * 3)


def test_hook_sees_the_complete_gradient_once():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    calls = []
    h.register_hook(lambda g: calls.append(g.data.copy()))
    (h + h * h + F.exp(h)).sum().backward()  # three consumers of h
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 1 + 2 * h.data + np.exp(h.data))


# ------------------------------------------------------------------------- higher order
def test_second_and_third_derivative_of_a_cube():
    x = leaf([0.5, -1.5, 2.0])
    (x ** 3).sum().backward(create_graph=True)
    first = x.grad
    np.testing.assert_allclose(first.data, 3 * x.data ** 2)
    assert first.creator is not None  # the backward pass was recorded
    x.cleargrad()
    first.sum().backward(create_graph=True)
    second = x.grad
    np.testing.assert_allclose(second.data, 6 * x.data)
    x.cleargrad()
    second.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6.0)


def test_second_derivative_of_tanh_with_grad():
    x = leaf(np.linspace(-2, 2, 7))
    (first,) = tg.grad(F.tanh(x).sum(), x, create_graph=True)
    (second,) = tg.grad(first.sum(), x)
    t = np.tanh(x.data)
    np.testing.assert_allclose(first.data, 1 - t ** 2, rtol=1e-12)
    np.testing.assert_allclose(second.data, -2 * t * (1 - t ** 2), rtol=1e-12, atol=1e-15)
    assert x.grad is None


def test_without_create_graph_the_gradient_is_a_constant():
    x = leaf([1.0, 2.0])
    (x ** 3).sum().backward()
    assert x.grad.creator is None and not x.grad.requires_grad


# ------------------------------------------------------------------------- tg.grad
def test_grad_leaves_dot_grad_alone_and_gives_none_for_unused_inputs():
    x, unused = leaf([1.0, 2.0]), leaf([5.0])
    x.grad = leaf([100.0, 100.0])
    gx, gu = tg.grad((x * x).sum(), [x, unused])
    np.testing.assert_allclose(gx.data, 2 * x.data)
    assert gu is None
    np.testing.assert_array_equal(x.grad.data, 100.0)


def test_grad_of_several_outputs_with_grad_outputs_and_intermediate_inputs():
    x = leaf([1.0, 2.0, 3.0])
    h = x * 2.0
    y1, y2 = h * h, F.exp(h)
    g1, g2 = np.array([1.0, 0.0, -1.0]), np.array([0.5, 0.5, 0.5])
    gh, gx = tg.grad([y1, y2], [h, x], [tg.Variable(g1), tg.Variable(g2)])
    expected_h = g1 * 2 * h.data + g2 * np.exp(h.data)
    np.testing.assert_allclose(gh.data, expected_h)
    np.testing.assert_allclose(gx.data, 2 * expected_h)


def test_grad_runs_hooks_only_of_the_leaves_asked_for():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    calls = []
    w.register_hook(lambda g: calls.append("w"))
    x.register_hook(lambda g: calls.append("x"))
    tg.grad((x * w).sum(), x)
    assert calls == ["x"]


# ------------------------------------------------------------------------- detach, unchain
def test_detach_shares_data_and_stops_the_gradient():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    d = h.detach()
    assert d.creator is None and not d.requires_grad
    assert np.shares_memory(d.data, h.data)
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.data, d.data)  # d is a constant: no path through h


def test_unchain_backward_cuts_the_graph_behind_and_frees_it():
    x = leaf([0.5, -0.5])
    h = F.tanh(x * 2.0)
    creator = weakref.ref(h.creator)
    h.unchain_backward()
    assert h.creator is None and h.requires_grad
    gc.collect()
    assert creator() is None  # nothing keeps the graph behind h alive
    (h * 2.0).sum().backward()
    assert x.grad is None
    np.testing.assert_array_equal(h.grad.data, 2.0)


def test_unchain_backward_also_cuts_the_other_outputs_of_a_function_behind():
    x = leaf(np.arange(4.0))
    h, c = F.split(x * 2.0, 2)  # like the (h, c) state of an LSTM cell
    h.unchain_backward()
    assert c.creator is None and c.requires_grad
    (c * 3.0).sum().backward()
    assert x.grad is None
    np.testing.assert_array_equal(c.grad.data, 3.0)


def test_unchain_backward_truncates_a_carried_state():
    # Truncated BPTT: the state carried into the second window contributes no gradient
    # to the first window's parameters.
    w = leaf(0.9)
    s = leaf(1.0)
    for _ in range(3):
        s = F.tanh(s * w)
    s.unchain_backward()
    for _ in range(2):
        s = F.tanh(s * w)
    s.backward()
    # Reference: the same two steps from a constant initial state.
    w2 = leaf(0.9)
    s2 = tg.Variable(np.float64(np.tanh(0.9 * np.tanh(0.9 * np.tanh(0.9)))), requires_grad=False)
    for _ in range(2):
        s2 = F.tanh(s2 * w2)
    s2.backward()
    np.testing.assert_allclose(w.grad.data, w2.grad.data, rtol=1e-12)


# ------------------------------------------------------------------------- large graphs
@pytest.mark.slow
def test_a_100000_step_chain_back_propagates():
    # Recursion would overflow the stack; a quadratic backward would take hours.
    x = leaf(1.0)
    a = 1.0 + 1e-5
    y = x
    for _ in range(100_000):
        y = y * a
    y.backward()
    np.testing.assert_allclose(x.grad.data, a ** 100_000, rtol=1e-9)
    del y  # freeing the chain must not recurse either
    gc.collect()


@pytest.mark.slow
def test_a_50000_wide_fan_in_back_propagates():
    # One leaf feeds 50,000 Functions that all feed one: stack's backward fans out again.
    x = leaf(2.0)
    total = F.stack([x * float(i) for i in range(50_000)]).sum()
    total.backward()
    assert x.grad.data == sum(range(50_000))


def test_grad_runs_no_backward_behind_the_requested_inputs():
    class Untouchable(tg.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            raise AssertionError("backward behind the requested input was run")

    x = tg.Variable(np.ones(3))
    middle = Untouchable()(x)
    y = (middle * middle).sum()
    (g,) = tg.grad(y, [middle])
    np.testing.assert_allclose(g.data, 2 * middle.data)


def test_grad_takes_a_single_array_as_grad_outputs():
    x = tg.Variable(np.array([1.0, 2.0, 3.0]))
    y = x * x
    (g,) = tg.grad(y, x, grad_outputs=np.array([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(g.data, [2.0, 0.0, 12.0])


def test_grad_walks_no_function_recorded_before_its_inputs():
    class Watched(tg.Function):
        """y = 2x, noting when the backward pass looks at its inputs."""

        walked = False

        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 2

        @property
        def inputs(self):
            Watched.walked = True
            return self._inputs

        @inputs.setter
        def inputs(self, value):
            self._inputs = value

    x = tg.Variable(np.ones(3))
    middle = Watched()(x) * 3.0
    Watched.walked = False
    (g,) = tg.grad((middle * middle).sum(), [middle])
    np.testing.assert_allclose(g.data, 2 * middle.data)
    assert not Watched.walked
    middle.sum().backward()  # a backward pass to the leaves does walk it
    assert Watched.walked


def test_numpy_backward_runs_unrecorded_and_backward_when_the_pass_is_recorded():
    class Cube(tg.Function):
        """y = x³ with both backwards, noting which one ran."""

        calls = []

        def forward(self, x):
            return x ** 3

        def backward(self, gy):
            Cube.calls.append("backward")
            x = self.inputs[0]
            return gy * 3.0 * x * x

        def numpy_backward(self, gy):
            Cube.calls.append("numpy_backward")
            assert isinstance(gy, np.ndarray)
            return gy * 3.0 * self.inputs[0].data ** 2

    x = leaf([1.0, -2.0])
    Cube()(x).sum().backward()
    assert Cube.calls == ["numpy_backward"] and x.grad.creator is None
    np.testing.assert_allclose(x.grad.data, 3 * x.data ** 2)
    (first,) = tg.grad(Cube()(x).sum(), x, create_graph=True)
    assert Cube.calls == ["numpy_backward", "backward"] and first.creator is not None
    (second,) = tg.grad(first.sum(), x)
    np.testing.assert_allclose(second.data, 6 * x.data)
