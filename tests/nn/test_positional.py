"""The causal mask helper and the sinusoidal and learned positional encodings."""

import numpy as np
import pytest

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from nn.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    generate_square_subsequent_mask,
    sinusoidal_encoding,
)


def test_causal_mask_matches_torch_and_hides_the_future(torch, rng):
    mask = generate_square_subsequent_mask(5)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())
    # The same mask to both conventions: as MHA's attn_mask and as F.sdpa's float mask.
    x = rng.standard_normal((5, 1, 4)).astype(np.float32)
    mha = nn.MultiheadAttention(4, 2)
    _, weights = mha(x, x, x, attn_mask=mask)
    assert (np.triu(weights.data[0], k=1) == 0).all()
    q = rng.standard_normal((5, 3))
    masked = F.scaled_dot_product_attention(q, q, q, attn_mask=mask.astype(np.float64))
    np.testing.assert_allclose(masked.data, F.scaled_dot_product_attention(q, q, q, is_causal=True).data)


def test_sinusoidal_table():
    table = sinusoidal_encoding(50, 6, np.float64)
    p, i = 7, 1
    assert table[p, 2 * i] == pytest.approx(np.sin(p / 10000 ** (2 * i / 6)))
    assert table[p, 2 * i + 1] == pytest.approx(np.cos(p / 10000 ** (2 * i / 6)))
    np.testing.assert_array_equal(table[0], [0, 1, 0, 1, 0, 1])
    # A fixed offset is a rotation of each (sin, cos) pair: PE[p + k] = R_k PE[p].
    k, w = 3, 10000 ** (-2 * i / 6)
    rotation = np.array([[np.cos(k * w), -np.sin(k * w)], [np.sin(k * w), np.cos(k * w)]])
    np.testing.assert_allclose(table[10:20, 2:4] @ rotation, table[13:23, 2:4], atol=1e-12)
    assert sinusoidal_encoding(4, 5).shape == (4, 5)  # odd widths too


@pytest.mark.parametrize("batch_first", [False, True])
def test_sinusoidal_encoding_adds_the_table(batch_first, rng):
    encoding = SinusoidalPositionalEncoding(6, max_len=20, batch_first=batch_first)
    assert list(encoding.parameters()) == []
    x = rng.standard_normal((3, 7, 6) if batch_first else (7, 3, 6)).astype(np.float32)
    y = encoding(x)
    assert y.dtype == np.float32
    expected = x + (sinusoidal_encoding(7, 6)[None] if batch_first else sinusoidal_encoding(7, 6)[:, None])
    np.testing.assert_allclose(y.data, expected, rtol=1e-6)


def test_learned_encoding_is_a_parameter_per_position(rng):
    tg.manual_seed(0)
    encoding = LearnedPositionalEncoding(4, max_len=10)
    assert [(n, p.shape) for n, p in encoding.named_parameters()] == [("weight", (10, 4))]
    assert 0.01 < encoding.weight.data.std() < 0.03
    x = tg.Variable(rng.standard_normal((3, 2, 4)))
    encoding.double()
    encoding(x).sum().backward()
    np.testing.assert_allclose(encoding.weight.grad.data[:3], 2.0)  # summed over the batch of 2
    np.testing.assert_allclose(encoding.weight.grad.data[3:], 0.0)


def test_encodings_bad_input(rng):
    with pytest.raises(tg.ShapeError, match=r"T <= max_len=5, got shape \(6, 1, 4\)"):
        LearnedPositionalEncoding(4, max_len=5)(np.zeros((6, 1, 4), dtype=np.float32))
    with pytest.raises(tg.ShapeError, match=r"d_model=4.*got shape \(2, 1, 3\)"):
        SinusoidalPositionalEncoding(4)(np.zeros((2, 1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="size must be >= 0"):
        generate_square_subsequent_mask(-1)
