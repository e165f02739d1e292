"""The methods and operators a PyTorch or NumPy user types on a Variable: shape methods,
elementwise methods, %, comparisons and conversions to Python and NumPy."""

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.functions as F

X = np.random.default_rng(0).standard_normal((2, 1, 3, 1))


@pytest.mark.parametrize("method, args", [
    ("squeeze", ()), ("squeeze", (1,)), ("squeeze", (2,)), ("squeeze", ((1, -1),)),
    ("unsqueeze", (0,)), ("unsqueeze", (-1,)), ("unsqueeze", (2,)),
    ("flatten", ()), ("flatten", (1,)), ("flatten", (1, 2)), ("flatten", (-2, -1)),
])
def test_shape_methods_match_pytorch_and_are_differentiable(torch, method, args):
    ours = getattr(tg.Variable(X), method)(*args)
    theirs = getattr(torch.tensor(X), method)(*args)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.data, theirs.numpy())
    tg.gradcheck(lambda x: getattr(x, method)(*args), X)


def test_ravel_and_reshape_minus_one():
    v = tg.Variable(X)
    assert v.ravel().shape == v.reshape(-1).shape == (X.size,)
    assert v.reshape(2, -1).shape == (2, 3)
    np.testing.assert_array_equal(v.ravel().data, X.ravel())
    tg.gradcheck(lambda x: x.ravel(), X)
    tg.gradcheck(lambda x: x.reshape(-1, 2), X)


def test_shape_methods_of_a_scalar_and_bad_axes():
    assert tg.Variable(np.zeros((2, 0, 3))).flatten(1).shape == (2, 0)  # no -1 to guess from a size 0
    s = tg.Variable(np.float64(2.0))
    assert s.flatten().shape == (1,) and s.unsqueeze(0).shape == (1,) and s.squeeze().shape == ()
    with pytest.raises(IndexError, match="unsqueeze: axis 5 is out of range for 5 dimensions"):
        tg.Variable(X).unsqueeze(5)
    with pytest.raises(IndexError, match="squeeze: axis -5"):
        tg.Variable(X).squeeze(-5)
    with pytest.raises(ValueError, match="flatten: start_dim 2 comes after end_dim 1"):
        tg.Variable(X).flatten(2, 1)


@pytest.mark.parametrize("name", ["abs", "exp", "log", "sqrt", "tanh", "sigmoid", "relu"])
def test_elementwise_methods_match_pytorch_and_gradcheck(torch, name):
    x = np.abs(X) + 0.1 if name in ("log", "sqrt") else X
    v, t = tg.Variable(x), torch.tensor(x, requires_grad=True)
    y, y_ref = getattr(v, name)(), getattr(t, name)()
    np.testing.assert_allclose(y.data, y_ref.detach().numpy(), rtol=1e-12, atol=1e-15)
    gy = np.random.default_rng(1).standard_normal(x.shape)
    y.backward(gy)
    y_ref.backward(torch.tensor(gy))
    np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-14)
    tg.gradcheck(lambda a: getattr(a, name)(), x)


def test_abs_gradient_is_zero_at_zero_as_pytorch(torch):
    x = np.array([-2.0, 0.0, 3.0])
    v, t = tg.Variable(x), torch.tensor(x, requires_grad=True)
    abs(v).sum().backward()
    t.abs().sum().backward()
    np.testing.assert_array_equal(v.grad.data, t.grad.numpy())  # [-1, 0, 1]
    tg.gradgradcheck(lambda a: (a.abs() * a).sum(), np.array([-2.0, 0.5, 3.0]))


def test_remainder_matches_pytorch_and_python(torch):
    a = np.array([[5.5, -5.5, 7.25], [-1.0, 2.0, 9.0]])
    b = np.array([2.0, 3.0, -4.0])
    for lhs, rhs in [(a, b), (a, 2.5), (a[:1], b[:, None])]:  # broadcasting both ways
        va, vb = (tg.Variable(z) if isinstance(z, np.ndarray) else z for z in (lhs, rhs))
        ta, tb = (torch.tensor(z, requires_grad=True) if isinstance(z, np.ndarray) else z for z in (lhs, rhs))
        y, y_ref = va % vb, ta % tb
        np.testing.assert_allclose(y.data, y_ref.detach().numpy(), rtol=1e-12)
        gy = np.random.default_rng(2).standard_normal(y.shape)
        y.backward(gy)
        y_ref.backward(torch.tensor(gy))
        for v, t in [(va, ta), (vb, tb)]:
            if isinstance(v, tg.Variable):
                np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-10)
    assert (tg.Variable(np.array(-7.0)) % 3).item() == -7.0 % 3 == 2.0
    tg.gradcheck(lambda p, q: p % q, a, b)
    tg.gradcheck(lambda q: -7.0 % q, b)  # PyTorch has no derivative for a scalar on the left
    x32 = tg.Variable(np.ones(3, np.float32))
    assert (x32 % 0.5).dtype == np.float32 and (2.0 % x32).dtype == np.float32


def test_comparisons_give_boolean_variables_without_gradient(torch):
    a = tg.Variable(np.array([1.0, 2.0, 3.0]))
    b = np.array([3.0, 2.0, 1.0])
    for op in ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"]:
        ours = getattr(a, op)(b)
        theirs = getattr(torch.tensor(a.data), op)(torch.tensor(b))
        assert isinstance(ours, tg.Variable) and ours.dtype == bool and not ours.requires_grad
        np.testing.assert_array_equal(ours.data, theirs.numpy())
        assert ours.creator is None
    np.testing.assert_array_equal((2 < a).data, [False, False, True])  # reflected
    np.testing.assert_array_equal((b > a).data, [True, False, False])  # ndarray on the left
    np.testing.assert_array_equal((a == tg.Variable(b)).data, [False, True, False])
    assert F.where((a > 1.5).data, a, 0.0).data.tolist() == [0.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"<: shapes \(3,\) and \(2,\) do not broadcast"):
        a < np.ones(2)  # noqa: B015


def test_identity_hashing_survives_value_comparison():
    a, b = tg.Variable(np.zeros(2)), tg.Variable(np.zeros(2))
    assert len({a, b}) == 2 and {a: 1, b: 2}[b] == 2
    assert (a == None) is False and (a != None) is True  # noqa: E711 - identity fallback
    assert [a, None].count(None) == 1 and a in [a] and b not in {a}
    assert (a == "a") is False


def test_conversions_to_python_and_numpy():
    one = tg.Variable(np.array([[2.5]], np.float32))
    assert one.item() == 2.5 and float(one) == 2.5 and int(one) == 2 and bool(one)
    v = tg.Variable(np.arange(6.0).reshape(2, 3))
    assert v.numpy() is v.data
    assert np.asarray(v) is v.data
    assert np.asarray(v, dtype=np.float32).dtype == np.float32
    assert np.array(v) is not v.data and np.array_equal(np.array(v), v.data)
    with pytest.raises(ValueError, match=r"item: .* shape \(2, 3\) \(6 elements\)"):
        v.item()
    with pytest.raises(ValueError, match=r"float: .* shape \(2, 3\)"):
        float(v)
    with pytest.raises(ValueError, match=r"int: .* shape \(2, 3\)"):
        int(v)
    with pytest.raises(ValueError, match=r"bool: .* shape \(2, 3\) is ambiguous"):
        bool(v > 1)
    assert (np.float32(2.0) * v).creator is not None  # NumPy scalars still defer to Variable
