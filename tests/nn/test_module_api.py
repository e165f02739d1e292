"""The Module API a PyTorch user expects: forward hooks and pre-hooks with removable handles,
module traversal, apply, requires_grad_, reset_parameters, assigning and deleting attributes,
and PyTorch's printed layout."""

import numpy as np
import pytest

import nn
import tensorgrad as tg


def torch_twin(torch):
    """The same small model in both libraries: embedding, LSTM, head, inside a container."""
    ours = nn.Sequential(nn.Embedding(7, 4, padding_idx=0), nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3)),
                         nn.LSTM(3, 5, num_layers=2, batch_first=True), nn.Linear(5, 7, bias=False))
    theirs = torch.nn.Sequential(
        torch.nn.Embedding(7, 4, padding_idx=0),
        torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3)),
        torch.nn.LSTM(3, 5, num_layers=2, batch_first=True), torch.nn.Linear(5, 7, bias=False))
    return ours, theirs


def test_repr_is_pytorchs(torch):
    ours, theirs = torch_twin(torch)
    assert repr(ours) == repr(theirs)
    for a, b in [(nn.Linear(3, 2), torch.nn.Linear(3, 2)),
                 (nn.Embedding(10, 3), torch.nn.Embedding(10, 3)),
                 (nn.LSTM(3, 4, 2, bias=False, batch_first=True, dropout=0.5, bidirectional=True),
                  torch.nn.LSTM(3, 4, 2, bias=False, batch_first=True, dropout=0.5, bidirectional=True)),
                 (nn.GRU(3, 4), torch.nn.GRU(3, 4)), (nn.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4)),
                 (nn.RNNCell(3, 4, nonlinearity="relu"), torch.nn.RNNCell(3, 4, nonlinearity="relu")),
                 (nn.LSTM(3, 4, proj_size=2), torch.nn.LSTM(3, 4, proj_size=2))]:
        assert repr(a) == repr(b)


def test_attention_and_encoder_layer_reprs_are_pytorchs(torch):
    """Whole reprs, but for two classes tensorgrad has no twin of: PyTorch's out_proj is a
    NonDynamicallyQuantizableLinear (a Linear), its Dropout prints an ``inplace`` it has not."""
    def as_ours(module):
        text = repr(module).replace("NonDynamicallyQuantizableLinear", "Linear")
        return text.replace(", inplace=False)", ")")

    for args, options in [((8, 2), {}), ((8, 2), dict(batch_first=True, bias=False, dropout=0.5))]:
        assert repr(nn.MultiheadAttention(*args, **options)) == \
            as_ours(torch.nn.MultiheadAttention(*args, **options))
    for args, options in [((8, 2), {}),
                          ((8, 2, 16, 0.0), dict(activation="gelu", norm_first=True, bias=False))]:
        assert repr(nn.TransformerEncoderLayer(*args, **options)) == \
            as_ours(torch.nn.TransformerEncoderLayer(*args, **options))
    layer = dict(d_model=8, nhead=2, dim_feedforward=16)
    assert repr(nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), 3)) == as_ours(
        torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(**layer), 3, enable_nested_tensor=False))


def test_module_list_registers_folds_its_repr_and_slices_as_pytorchs(torch):
    ours = nn.ModuleList([nn.Linear(2, 3), nn.Linear(2, 3), nn.Linear(3, 1)]).append(nn.Linear(3, 1))
    theirs = torch.nn.ModuleList([torch.nn.Linear(2, 3), torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)])
    theirs.append(torch.nn.Linear(3, 1))
    assert repr(ours) == repr(theirs)  # (0-1): 2 x Linear(...), (2-3): 2 x Linear(...)
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in theirs.named_parameters()]
    assert isinstance(ours[1:], nn.ModuleList) and len(ours[1:]) == 3 and ours[-1] is list(ours)[3]
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList()) == "ModuleList()"
    assert len(nn.ModuleList().extend([nn.Linear(1, 1)] * 2)) == 2
    with pytest.raises(IndexError, match="ModuleList: index 4 is out of range for 4 modules"):
        ours[4]


def test_repr_of_a_module_with_settings_and_children():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 2)

        def extra_repr(self):
            return "tied=True\nscale=0.5"

    assert repr(Model()) == ("Model(\n  tied=True\n  scale=0.5\n"
                             "  (head): Linear(in_features=2, out_features=2, bias=True)\n)")


def test_named_modules_modules_and_apply_visit_as_pytorch(torch):
    ours, theirs = torch_twin(torch)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in theirs.modules()]
    visited, visited_ref = [], []
    assert ours.apply(lambda m: visited.append(type(m).__name__)) is ours
    theirs.apply(lambda m: visited_ref.append(type(m).__name__))
    assert visited == visited_ref  # children first, in registration order


def test_apply_initialises_weights():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))

    def init(m):
        if isinstance(m, nn.Linear):
            m.weight.data[...] = 0.25

    model.apply(init)
    assert all((m.weight.data == 0.25).all() for m in model)


def test_forward_pre_hook_replaces_the_input_and_is_removable():
    layer = nn.Linear(3, 2)
    x = np.ones((4, 3), np.float32)
    handle = layer.register_forward_pre_hook(lambda module, args: args[0] * 2)
    np.testing.assert_allclose(layer(x).data, layer.forward(x * 2).data)
    handle.remove()
    np.testing.assert_allclose(layer(x).data, layer.forward(x).data)
    handle.remove()  # twice is harmless


def test_forward_hook_sees_and_replaces_the_output_and_gradients_flow_through():
    layer = nn.Linear(3, 2)
    seen = []
    watch = layer.register_forward_hook(lambda m, args, out: seen.append((m, args[0].shape, out.shape)))
    double = layer.register_forward_hook(lambda m, args, out: out * 2)
    x = tg.Variable(np.ones((4, 3), np.float32))
    y = layer(x)
    assert seen == [(layer, (4, 3), (4, 2))]
    np.testing.assert_allclose(y.data, 2 * layer.forward(x).data)
    y.sum().backward()
    np.testing.assert_allclose(layer.bias.grad.data, [8.0, 8.0])  # 4 rows, doubled
    watch.remove()
    double.remove()
    layer(x)
    assert len(seen) == 1


def test_hooks_on_a_layer_inside_a_model_capture_activations():
    model = nn.CharRNN(6, hidden_size=8)
    captured = {}
    with model.rnn.register_forward_hook(lambda m, args, out: captured.update(out=out[0].shape)):
        model(np.zeros((2, 5), np.int64))
    assert captured == {"out": (2, 5, 8)}  # (T, B, H)
    captured.clear()
    model(np.zeros((2, 5), np.int64))
    assert captured == {}  # the with-block removed the hook


def test_hooks_returning_wrong_shapes_are_clear_errors():
    layer = nn.Linear(3, 2)
    layer.register_forward_hook(lambda m, args, out: out[:1])
    with pytest.raises(ValueError, match=r"Linear: forward hook <lambda> returned shape \(1, 2\) for "
                                         r"the output, which has shape \(4, 2\)"):
        layer(np.ones((4, 3), np.float32))
    lstm = nn.LSTM(3, 4)
    lstm.register_forward_hook(lambda m, args, out: (out[0], out[1][0]))
    with pytest.raises(ValueError, match=r"LSTM: forward hook <lambda> returned a Variable for the "
                                         r"output\[1\], a tuple"):
        lstm(np.ones((2, 1, 3), np.float32))
    cell = nn.LSTMCell(3, 4)
    cell.register_forward_pre_hook(lambda m, args: (args[0], None, None))
    with pytest.raises(ValueError, match=r"LSTMCell: forward pre-hook <lambda> returned 3 values for "
                                         r"the 1 of the inputs"):
        cell(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="forward hook must be callable"):
        layer.register_forward_hook(None)


def test_requires_grad_freezes_parameters():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    assert model[0].requires_grad_(False) is model[0]
    model(np.ones((2, 3), np.float32)).sum().backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[1].weight.grad is not None
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def test_reset_parameters_draws_the_initialisation_again():
    tg.manual_seed(3)
    fresh = nn.Linear(4, 2)
    tg.manual_seed(3)
    layer = nn.Linear(4, 2).double()
    layer.weight.data[...] = 7.0
    weight = layer.weight
    tg.manual_seed(3)
    layer.reset_parameters()
    assert layer.weight is weight and layer.weight.dtype == np.float64
    np.testing.assert_allclose(layer.weight.data, fresh.weight.data, rtol=1e-6)  # drawn in float64
    np.testing.assert_allclose(layer.bias.data, fresh.bias.data, rtol=1e-6)
    assert np.abs(layer.weight.data).max() <= 0.5
    embedding = nn.Embedding(5, 3, padding_idx=2)
    embedding.weight.data[...] = 1.0
    embedding.reset_parameters()
    assert (embedding.weight.data[2] == 0).all() and (embedding.weight.data != 1.0).all()
    norm = nn.LayerNorm(3)
    norm.weight.data[...] = 5.0
    norm.bias.data[...] = 5.0
    norm.reset_parameters()
    assert (norm.weight.data == 1).all() and (norm.bias.data == 0).all()


def test_assigning_over_a_parameter_or_a_submodule_follows_pytorchs_rules(torch):
    layer, theirs = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    for value in (np.zeros((2, 2)), tg.Variable(np.zeros((2, 2))), nn.Linear(2, 2)):
        with pytest.raises(TypeError, match=rf"Linear: cannot assign '{type(value).__name__}' as parameter "
                                            r"'weight' \(a Parameter or None expected\)"):
            layer.weight = value
    with pytest.raises(TypeError, match="as parameter 'weight'"):
        theirs.weight = torch.zeros(2, 2)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]

    layer.bias, theirs.bias = None, None  # an absent bias, still registered
    with pytest.raises(TypeError, match="cannot assign 'ndarray' as parameter 'bias'"):
        layer.bias = np.zeros(2)
    layer.weight = nn.Parameter(np.ones((2, 2)))
    assert list(layer.state_dict()) == list(theirs.state_dict()) == ["weight"]
    np.testing.assert_array_equal(layer(np.ones((1, 2))).data, [[2.0, 2.0]])

    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"Sequential: cannot assign 'int' as child module '1' "
                                        r"\(a Module or None expected\)"):
        setattr(model, "1", 3)
    model.scale = 2.0  # a plain attribute, as before
    setattr(model, "1", None)
    assert [n for n, _ in model.named_modules()] == ["", "0"]


def test_deleting_a_parameter_or_a_submodule_unregisters_it(torch):
    layer, theirs = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    del layer.bias, theirs.bias
    assert list(layer.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert not hasattr(layer, "bias")
    model = nn.Sequential(nn.Linear(2, 2))
    model.head = nn.Linear(2, 1)
    del model.head
    assert list(model.state_dict()) == ["0.weight", "0.bias"]
    with pytest.raises(AttributeError):
        del model.head


def test_a_parameter_takes_its_data_as_a_variable_does(torch):
    assert nn.Parameter([1.0, 2.0]).dtype == tg.Variable([1.0, 2.0]).dtype == np.float32
    assert torch.nn.Parameter(torch.tensor([1.0, 2.0])).dtype == torch.float32
    assert nn.Parameter(0.5).dtype == np.float32
    assert nn.Parameter(np.ones(2)).dtype == np.float64  # an array keeps its dtype
    assert nn.Parameter(tg.Variable(np.ones(2, np.float16))).dtype == np.float16
    with pytest.raises(TypeError, match="Parameter: data must be floating-point, got dtype int64"):
        nn.Parameter([1, 2])
