"""float32 stays float32: through every operation, forward and backward, with Python
scalars, NumPy scalars and 0-d arrays mixed in (NumPy 2 would promote the latter two)."""

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.functions as F

f32 = np.float32
W = np.linspace(-1, 1, 12, dtype=f32).reshape(4, 3)
b = np.linspace(0, 1, 3, dtype=f32)
condition = np.array([[True, False, True, False]] * 3)
ids = np.array([[0, 3], [3, 1]])

OPS = {  # each applied to x: a float32 Variable of shape (3, 4) with values in (0.1, 0.9)
    "x + 1.0": lambda x: x + 1.0,
    "1.0 + x": lambda x: 1.0 + x,
    "x - 2": lambda x: x - 2,
    "2 - x": lambda x: 2 - x,
    "x * 0.5": lambda x: x * 0.5,
    "0.5 * x": lambda x: 0.5 * x,
    "x / 3.0": lambda x: x / 3.0,
    "3.0 / x": lambda x: 3.0 / x,
    "x ** 2": lambda x: x ** 2,
    "x ** 0.5": lambda x: x ** 0.5,
    "2.0 ** x": lambda x: 2.0 ** x,
    "-x": lambda x: -x,
    "x * np.float64": lambda x: x * np.float64(2.0),
    "np.float64 * x": lambda x: np.float64(2.0) * x,
    "x + 0-d float64": lambda x: x + np.array(1.0),
    "0-d float64 - x": lambda x: np.array(1.0) - x,
    "x ** 0-d float64": lambda x: x ** np.array(3.0),
    "x @ W": lambda x: x @ W,
    "W.T @ x.T": lambda x: W.T @ x.T,
    "linear": lambda x: F.linear(x, tg.Variable(W.T), tg.Variable(b)),
    "exp": F.exp,
    "log": F.log,
    "sqrt": F.sqrt,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "relu": lambda x: F.relu(x - 0.5),
    "clip": lambda x: F.clip(x, 0.2, 0.8),
    "clip with float64 bounds": lambda x: F.clip(x, np.float64(0.2), np.array(0.8)),
    "maximum": lambda x: F.maximum(x, 0.5),
    "maximum with np.float64": lambda x: F.maximum(np.float64(0.5), x),
    "where": lambda x: F.where(condition, x, 0.0),
    "where, other side": lambda x: F.where(condition, np.float64(1.0), x),
    "sum": lambda x: x.sum(axis=0),
    "mean": lambda x: x.mean(axis=1, keepdims=True),
    "max": lambda x: x.max(axis=-1),
    "logsumexp": lambda x: F.logsumexp(x, axis=1),
    "softmax": F.softmax,
    "log_softmax": lambda x: F.log_softmax(x, axis=0),
    "reshape": lambda x: x.reshape(2, 6),
    "transpose": lambda x: x.T,
    "broadcast_to": lambda x: F.broadcast_to(x, (2, 3, 4)),
    "sum_to": lambda x: F.sum_to(x, (1, 4)),
    "getitem": lambda x: x[1:, ::2],
    "getitem with arrays": lambda x: x[[0, 0, 2]],
    "concat": lambda x: F.concat([x, x * 2.0], axis=1),
    "stack": lambda x: F.stack([x, x], axis=-1),
    "split": lambda x: F.split(x, 2, axis=1),
    "embedding": lambda x: F.embedding(ids, x.T),
    "dropout": lambda x: F.dropout(x, 0.5),
}


@pytest.mark.parametrize("name", OPS)
def test_float32_stays_float32(name):
    x = tg.Variable(np.linspace(0.1, 0.9, 12, dtype=f32).reshape(3, 4))
    outputs = OPS[name](x)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    for y in outputs:
        assert y.dtype == f32, f"{name}: forward gives {y.dtype}"
    # The Function's own backward returns float32 (the engine does not have to cast).
    creator = outputs[0].creator
    grads = creator.backward(*[tg.Variable(np.ones(y.shape, f32), requires_grad=False) for y in outputs])
    for g in grads if isinstance(grads, tuple) else (grads,):
        assert g is None or g.dtype == f32, f"{name}: {creator.name}.backward gives {g.dtype}"
    # And so do first and second derivatives through the engine.
    total = sum((y * np.ones(y.shape, f32)).sum() for y in outputs)
    (gx,) = tg.grad(total, x, create_graph=True)
    assert gx.dtype == f32
    if gx.requires_grad:
        (ggx,) = tg.grad(gx.sum(), x)
        assert ggx is None or ggx.dtype == f32


def test_construction_dtypes():
    assert tg.Variable(1.5).dtype == f32
    assert tg.Variable([[1.0, 2.0]]).dtype == f32
    assert tg.Variable([1, 2]).dtype == np.int64
    assert tg.Variable(np.zeros(2)).dtype == np.float64  # an ndarray keeps its dtype
    assert tg.Variable(np.float64(1.0)).dtype == np.float64
    assert tg.Variable(np.zeros(2, f32)).dtype == f32


def test_backward_seed_and_accumulation_keep_float32():
    x = tg.Variable(np.ones(3, f32))
    y = (x * 2.0).sum()
    y.backward()
    y.backward()
    assert x.grad.dtype == f32
    z = x * 3.0
    z.backward(np.ones(3))  # a float64 seed: the gradient still comes back in x's dtype
    assert x.grad.dtype == f32
    np.testing.assert_array_equal(x.grad.data, 7.0)
    x.cleargrad()
    x.backward(np.ones(3))  # also when the output is the leaf itself
    assert x.grad.dtype == f32
    (g,) = tg.grad(x, x, tg.Variable(np.ones(3)))
    assert g.dtype == f32


def test_float64_next_to_a_float32_array_promotes_as_numpy_does():
    # Only scalars adapt; a float64 array of one or more elements promotes, as in NumPy.
    x = tg.Variable(np.ones(3, f32))
    y = x * np.ones(3)
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == f32


@pytest.mark.parametrize("int_dtype", [np.int64, np.int32, np.int16, np.bool_])
def test_integer_operands_take_the_floating_operands_dtype_as_in_pytorch(int_dtype, torch):
    x = tg.Variable(np.ones((2, 3), f32))
    n = np.arange(3).astype(int_dtype)
    results = [x + n, n * x, x - tg.Variable(n), tg.Variable(n) / x, x ** n, F.where(n > 0, x, n)]
    expected = torch.ones(2, 3) + torch.tensor(n)
    assert expected.dtype == torch.float32
    assert [y.dtype for y in results] == [f32] * len(results)
    sum(y.sum() for y in results).backward()
    assert x.grad.dtype == f32
    jf = tg.jit(lambda x, n: (x * n).sum())  # the cast is recorded: a replay casts each call's integers
    for k in (1, 2, 3):
        assert jf(np.ones(3, f32), np.arange(3) * k).item() == 3.0 * k


def test_astype_casts_the_gradient_back():
    x = tg.Variable(np.ones(3, f32))
    y = x.astype(np.float64)
    assert y.dtype == np.float64 and x.astype(f32) is x
    (y * np.arange(3.0)).sum().backward()
    assert x.grad.dtype == f32
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, 2.0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_the_one_of_one_minus_x_is_a_read_only_0d_array_of_the_dtype_giving_python_ones_bits(dtype):
    from tensorgrad.functions._util import one

    x = np.linspace(-3, 3, 7, dtype=dtype)
    unit = one(np.dtype(dtype))
    assert unit.shape == () and unit.dtype == dtype and one(np.dtype(dtype)) is unit
    assert not unit.flags.writeable
    for result, expected in [(unit - x * x, 1 - x * x), (x + unit, x + 1)]:
        assert result.dtype == dtype
        np.testing.assert_array_equal(result, expected, strict=True)
