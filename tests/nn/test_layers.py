"""Linear, Embedding, Dropout, LayerNorm and Sequential: against PyTorch with the same weights
(values and gradients), their initialisation, central differences, and bad input."""

import re

import numpy as np
import pytest

import nn
import tensorgrad as tg

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


def torch_state(module):
    return {name: value.detach().numpy() for name, value in module.state_dict().items()}


def check_against_torch(torch, ours, theirs, x, dtype, *, grad_input=True):
    """Same output and the same gradients of the input and of every parameter."""
    tol = TOLERANCE[dtype]
    theirs.to(getattr(torch, np.dtype(dtype).name))
    ours.to(dtype).load_state_dict(torch_state(theirs))
    weights = np.random.default_rng(1).standard_normal(ours(x).shape)  # a random upstream gradient
    x_ours = tg.Variable(x) if grad_input else x
    x_theirs = torch.tensor(x, requires_grad=grad_input)
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert y_ours.dtype == dtype
    np.testing.assert_allclose(y_ours.data, y_theirs.detach().numpy(), rtol=tol, atol=tol)
    (y_ours * weights.astype(dtype)).sum().backward()
    (y_theirs * torch.tensor(weights.astype(dtype))).sum().backward()
    if grad_input:
        np.testing.assert_allclose(x_ours.grad.data, x_theirs.grad.numpy(), rtol=tol, atol=tol)
    theirs_params = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(theirs_params)
    for name, param in ours.named_parameters():
        assert param.grad.dtype == dtype
        np.testing.assert_allclose(param.grad.data, theirs_params[name].grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=name)


# ------------------------------------------------------------------------- Linear
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(torch, dtype, bias):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(dtype)
    check_against_torch(torch, nn.Linear(4, 5, bias=bias), torch.nn.Linear(4, 5, bias=bias), x, dtype)


def test_linear_parameters_shapes_and_initialisation():
    tg.manual_seed(0)
    layer = nn.Linear(16, 3000)
    assert [(n, p.shape, p.dtype) for n, p in layer.named_parameters()] == [
        ("weight", (3000, 16), np.float32), ("bias", (3000,), np.float32)]
    bound = 1 / np.sqrt(16)
    for param in (layer.weight, layer.bias):
        assert np.abs(param.data).max() <= bound
        assert np.abs(param.data).max() > 0.99 * bound  # fills the interval...
        np.testing.assert_allclose(param.data.std(), bound / np.sqrt(3), rtol=0.05)  # ...uniformly
    tg.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(16, 3000).weight.data, layer.weight.data)
    assert nn.Linear(4, 2, bias=False).bias is None
    assert [name for name, _ in nn.Linear(4, 2, bias=False).named_parameters()] == ["weight"]


def test_linear_wrong_input_size_is_a_clear_error():
    with pytest.raises(tg.ShapeError, match=r"linear: input of shape \(2, 3\).*weight of shape \(5, 4\)"):
        nn.Linear(4, 5)(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_linear_refuses_an_input_of_another_dtype_as_pytorch_does(torch, dtype):
    """float64 data into a float32 layer is an error (PyTorch: "must have the same dtype"), not a
    float64 result."""
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.nn.Linear(3, 2)(torch.zeros((1, 3), dtype=getattr(torch, np.dtype(dtype).name)))
    with pytest.raises(TypeError, match=f"Linear: input has dtype {np.dtype(dtype)}, but the parameters are "
                                        "float32; cast the one or the other"):
        nn.Linear(3, 2)(np.zeros((1, 3), dtype))


# ------------------------------------------------------------------------- Embedding
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(torch, dtype, padding_idx):
    ids = np.array([[0, 2, 2, 5], [5, 1, 2, 0]])  # repeats: their gradients accumulate
    theirs = torch.nn.Embedding(6, 3, padding_idx=padding_idx)
    check_against_torch(torch, nn.Embedding(6, 3, padding_idx=padding_idx), theirs, ids, dtype,
                        grad_input=False)


def test_embedding_initialisation_and_padding_row():
    tg.manual_seed(0)
    table = nn.Embedding(2000, 8, padding_idx=-2)
    assert table.padding_idx == 1998 and table.weight.dtype == np.float32
    np.testing.assert_array_equal(table.weight.data[1998], 0)
    rows = np.delete(table.weight.data, 1998, axis=0)
    assert abs(rows.mean()) < 0.03 and abs(rows.std() - 1) < 0.03  # N(0, 1)
    out = table(np.array([1998, 3, 1998]))
    (out * out).sum().backward()
    np.testing.assert_array_equal(table.weight.grad.data[1998], 0)  # padding learns nothing
    np.testing.assert_allclose(table.weight.grad.data[3], 2 * table.weight.data[3])


def test_embedding_bad_input():
    with pytest.raises(IndexError, match="padding_idx 6 is out of range for 6"):
        nn.Embedding(6, 3, padding_idx=6)
    with pytest.raises(IndexError, match="index 6 is out of range for 6 embeddings"):
        nn.Embedding(6, 3)(np.array([0, 6]))
    with pytest.raises(TypeError, match="indices must be integers"):
        nn.Embedding(6, 3)(np.array([0.0, 1.0]))


# ------------------------------------------------------------------------- Dropout
def test_dropout_in_training_zeros_a_fraction_p_and_rescales_the_rest():
    tg.manual_seed(0)
    layer = nn.Dropout(0.25)
    x = tg.Variable(np.ones((200, 100), np.float32))
    y = layer(x)
    assert y.dtype == np.float32
    dropped = y.data == 0
    assert abs(dropped.mean() - 0.25) < 0.01
    np.testing.assert_allclose(y.data[~dropped], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)  # the same mask and scale


def test_dropout_is_the_identity_in_evaluation_and_for_p_zero():
    x = tg.Variable(np.arange(6.0).reshape(2, 3))
    layer = nn.Dropout(0.5).eval()
    assert not layer.training
    np.testing.assert_array_equal(layer(x).data, x.data)
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).data, x.data)
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).data, 0)
    assert nn.Sequential(nn.Dropout(0.5)).eval()[0].training is False
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


# ------------------------------------------------------------------------- LayerNorm
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,affine,bias", [(5, True, True), ((3, 5), True, True), (5, True, False),
                                               ((3, 5), False, False)])
def test_layer_norm_matches_torch(torch, dtype, shape, affine, bias):
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(dtype) * 3 + 1
    theirs = torch.nn.LayerNorm(shape, elementwise_affine=affine, bias=bias)
    with torch.no_grad():  # away from the initial ones and zeros, so a swap would show
        for param in theirs.parameters():
            param.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(3)))
    check_against_torch(torch, nn.LayerNorm(shape, elementwise_affine=affine, bias=bias), theirs, x, dtype)


def test_layer_norm_initialisation_and_gradcheck():
    layer = nn.LayerNorm((2, 3))
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, np.ones((2, 3)))
    np.testing.assert_array_equal(layer.bias.data, np.zeros((2, 3)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 3))
    weight, bias = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))

    def normalise(x, weight, bias):
        layer = nn.LayerNorm((2, 3))
        object.__setattr__(layer, "weight", weight)  # the Variables gradcheck varies stand in
        object.__setattr__(layer, "bias", bias)  # for the parameters (assigning them is refused)
        return layer(x)

    assert tg.gradcheck(normalise, x, weight, bias)
    assert tg.gradgradcheck(lambda x: nn.LayerNorm(3, elementwise_affine=False)(x), x, atol=1e-4)


def test_layer_norm_output_is_normalised_and_keeps_float32():
    y = nn.LayerNorm(64)(np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32) * 5 + 2)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.data.var(axis=-1), 1, atol=1e-3)  # eps makes it a little less


def test_layer_norm_wrong_shape_is_a_clear_error():
    with pytest.raises(tg.ShapeError, match=r"LayerNorm: input of shape \(2, 4\) does not end with the "
                                            r"normalized shape \(3,\)"):
        nn.LayerNorm(3)(np.zeros((2, 4), np.float32))


# ------------------------------------------------------------------------- Sequential
def test_sequential_names_indexing_and_forward(torch):
    ours = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Dropout(0.5), nn.Linear(8, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Dropout(0.5),
                                 torch.nn.Linear(8, 2)).double().eval()
    ours.eval()
    x = np.random.default_rng(0).standard_normal((3, 4))
    check_against_torch(torch, ours, theirs, x, np.float64)
    assert [name for name, _ in ours.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias",
                                                              "3.weight", "3.bias"]
    assert len(ours) == 4 and list(ours) == [ours[0], ours[1], ours[2], ours[3]]
    assert ours[-1] is ours[3]
    tail = ours[2:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 2 and tail[1] is ours[3]
    assert [name for name, _ in tail.named_parameters()] == ["3.weight", "3.bias"]  # as PyTorch's slice
    with pytest.raises(IndexError, match="index 4 is out of range for 4 modules"):
        ours[4]
    extended = nn.Sequential(nn.Linear(2, 2)).append(nn.Linear(2, 1))
    assert [name for name, _ in extended.named_parameters()][-1] == "1.bias"


def test_reprs_match_torch(torch):
    assert repr(nn.Linear(3, 4, bias=False)) == repr(torch.nn.Linear(3, 4, bias=False))
    assert repr(nn.Embedding(10, 3, padding_idx=0)) == repr(torch.nn.Embedding(10, 3, padding_idx=0))
    assert repr(nn.Embedding(10, 3)) == repr(torch.nn.Embedding(10, 3))
    assert repr(nn.LayerNorm((2, 3), eps=1e-6)) == repr(torch.nn.LayerNorm((2, 3), eps=1e-6))
    assert (repr(nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3)))
            == repr(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3))))
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2)"


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Linear(-3, 4), "Linear: in_features must be at least 0, got -3"),
    (lambda: nn.Linear(3, -4), "Linear: out_features must be at least 0, got -4"),
    (lambda: nn.Embedding(0, 4), "Embedding: num_embeddings must be greater than zero, got 0"),
    (lambda: nn.Embedding(5, -1), "Embedding: embedding_dim must be at least 0, got -1"),
    (lambda: nn.LSTM(3, -2), "LSTM: hidden_size must be greater than zero, got -2"),
    (lambda: nn.GRUCell(-1, 2), "GRUCell: input_size must be greater than zero, got -1"),
])
def test_negative_sizes_are_errors_naming_the_argument(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


@pytest.mark.parametrize("make", [lambda: nn.Linear(3.0, 4), lambda: nn.Embedding(5, True)])
def test_sizes_must_be_integers(make):
    with pytest.raises(TypeError, match="must be an integer"):
        make()
