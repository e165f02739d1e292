"""F.scaled_dot_product_attention, F.gelu and F.erf: central differences (first and second
derivatives, masks included), PyTorch's values and gradients, and bad input."""

import numpy as np
import pytest
from replays import assert_replays_as_eager

import tensorgrad as tg
import tensorgrad.functions as F

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


def qkv(rng, batch=(2,), L=3, S=4, E=5, Ev=2):
    return (rng.standard_normal(batch + (L, E)), rng.standard_normal(batch + (S, E)),
            rng.standard_normal(batch + (S, Ev)))


MASKS = {
    "none": lambda rng: None,
    "bool": lambda rng: np.array([[True, False, True, True], [False, True, False, False],
                                  [True, True, True, False]]),
    "float": lambda rng: rng.standard_normal((3, 4)),
    "float_with_inf": lambda rng: np.where(rng.random((3, 4)) < 0.3, -np.inf, rng.standard_normal((3, 4))),
    "dead_row": lambda rng: np.array([[True, True, False, False], [False, False, False, False],
                                      [True, False, True, False]]),
}


@pytest.mark.parametrize("mask", sorted(MASKS))
def test_sdpa_gradcheck_and_gradgradcheck(rng, mask):
    m = MASKS[mask](rng)
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m)  # noqa: E731
    assert tg.gradcheck(fn, *qkv(rng))
    assert tg.gradgradcheck(fn, *qkv(rng))


def test_sdpa_causal_and_scale_gradcheck(rng):
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)  # noqa: E731
    assert tg.gradcheck(fn, *qkv(rng, L=4))
    assert tg.gradgradcheck(fn, *qkv(rng, L=4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask", sorted(MASKS) + ["causal", "scale"])
def test_sdpa_matches_torch(torch, rng, mask, dtype):
    q, k, v = (a.astype(dtype) for a in qkv(rng, batch=(2, 3)))
    kwargs = {"is_causal": True} if mask == "causal" else {"scale": 0.7} if mask == "scale" else {
        "attn_mask": MASKS[mask](rng)}
    if kwargs.get("attn_mask") is not None and kwargs["attn_mask"].dtype.kind == "f":
        kwargs["attn_mask"] = kwargs["attn_mask"].astype(dtype)
    ours = [tg.Variable(a) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    torch_kwargs = {key: torch.tensor(value) if isinstance(value, np.ndarray) else value
                    for key, value in kwargs.items()}
    y = F.scaled_dot_product_attention(*ours, **kwargs)
    t = torch.nn.functional.scaled_dot_product_attention(*theirs, **torch_kwargs)
    tol = TOLERANCE[dtype]
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, t.detach().numpy(), rtol=tol, atol=tol)
    w = rng.standard_normal(y.shape).astype(dtype)
    (y * w).sum().backward()
    (t * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=tol, atol=tol)


def test_sdpa_dropout_drops_weights_and_keeps_the_expectation(rng):
    q, k, v = qkv(rng, batch=(1,), L=2, S=3, Ev=1)
    v = np.ones_like(v)  # every row of A V is the row sum of the kept, rescaled weights
    tg.manual_seed(0)
    outputs = np.stack([F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).data for _ in range(2000)])
    assert (outputs == 0).any()  # some weights were dropped...
    np.testing.assert_allclose(outputs.mean(axis=0), 1.0, atol=0.05)  # ...and the rest scaled by 2
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v).data, 1.0)


def test_sdpa_dropout_gradcheck(rng):
    def fn(q, k, v):  # the same dropout mask at every evaluation
        tg.manual_seed(0)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=MASKS["bool"](rng), dropout_p=0.3)

    assert tg.gradcheck(fn, *qkv(rng))


def test_sdpa_bad_input(rng):
    q, k, v = qkv(rng)
    with pytest.raises(tg.ShapeError, match=r"\(2, 3, 5\).*\(2, 4, 4\)"):
        F.scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(tg.ShapeError, match=r"attn_mask of shape \(3, 3\).*L=3, S=4"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 3), dtype=bool))
    with pytest.raises(tg.ShapeError, match=r"attn_mask of shape \(3, 3, 4\).*\(2, 3, 4\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 3, 4), dtype=bool))
    with pytest.raises(TypeError, match="boolean or floating-point, got dtype int64"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), dtype=bool), is_causal=True)


def test_sdpa_float32_stays_float32_with_a_float64_mask(rng):
    q, k, v = (a.astype(np.float32) for a in qkv(rng))
    assert F.scaled_dot_product_attention(q, k, v, attn_mask=rng.standard_normal((3, 4))).dtype == np.float32


def changing_masks(rng, kind, calls=4):
    """``calls`` masks (3, 4) of ``kind``, new values at each call. A boolean mask lets every query
    see key 0, except that with "dead_rows" the queries with no key change from call to call."""
    if kind.startswith("float"):
        return [MASKS[kind](rng) for _ in range(calls)]
    masks = [rng.random((3, 4)) < 0.6 for _ in range(calls)]
    dead = [(), (1,), (0, 2), ()] if kind == "dead_rows" else [()] * calls
    for m, rows in zip(masks, dead, strict=True):
        m[:, 0] = True
        m[list(rows)] = False
    return masks


@pytest.mark.parametrize("mask", ["bool", "float", "float_with_inf", "dead_rows"])
def test_sdpa_under_jit_reads_each_calls_mask(rng, mask):
    """The mask is an input of the plan: each replay masks with its own, a query with no key
    to attend to gets the output 0 as in eager mode, and every gradient is the eager one."""
    def qkv_variables():
        return tuple(tg.Variable(a.astype(np.float32), requires_grad=True) for a in qkv(rng))

    jitted = assert_replays_as_eager(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                                     [qkv_variables() + (m,) for m in changing_masks(rng, mask)])
    if mask == "dead_rows":
        m = np.ones((3, 4), dtype=bool)
        m[1] = False
        assert not jitted(*qkv_variables(), m).data[:, 1].any()
        assert jitted.traces == 1


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradcheck_and_gradgradcheck(rng, approximate):
    x = rng.standard_normal((3, 4)) * 2
    assert tg.gradcheck(lambda x: F.gelu(x, approximate), x)
    assert tg.gradgradcheck(lambda x: F.gelu(x, approximate), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(torch, rng, approximate, dtype):
    x = (rng.standard_normal((4, 5)) * 3).astype(dtype)
    ours, theirs = tg.Variable(x), torch.tensor(x, requires_grad=True)
    y, t = F.gelu(ours, approximate), torch.nn.functional.gelu(theirs, approximate=approximate)
    assert y.dtype == dtype
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(y.data, t.detach().numpy(), rtol=tol, atol=tol)
    y.sum().backward()
    t.sum().backward()
    np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=tol, atol=tol)


def test_gelu_bad_approximate():
    with pytest.raises(ValueError, match="'none' or 'tanh', got 'fast'"):
        F.gelu(np.zeros(2), "fast")


def test_erf_values_and_gradients(rng):
    x = rng.standard_normal(6)
    np.testing.assert_allclose(F.erf(np.array([0.0, 10.0, -10.0])).data, [0.0, 1.0, -1.0])
    assert tg.gradcheck(F.erf, x)
    assert tg.gradgradcheck(F.erf, x)
