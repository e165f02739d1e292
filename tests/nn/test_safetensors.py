"""nn.save / nn.load with a .safetensors path: exact round trips, atomic writes, damaged
files, and the same weights in PyTorch (written here, loaded there, and back)."""

import importlib.util
import os
import pathlib

import numpy as np
import pytest

import nn
import tensorgrad as tg

safetensors = pytest.importorskip("safetensors")
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "continue_in_pytorch.py"


def load_example():
    """examples/continue_in_pytorch.py as a module: its CharRNN is the PyTorch twin of nn.CharRNN."""
    spec = importlib.util.spec_from_file_location("continue_in_pytorch", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAYERS = [  # (ours, PyTorch's class name, keyword arguments both take)
    ("RNN", dict(num_layers=2, nonlinearity="relu")),
    ("RNN", dict(bidirectional=True)),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(bias=False)),
    ("LSTM", dict(num_layers=2, proj_size=2, bidirectional=True)),
    ("GRU", dict(num_layers=2, batch_first=True)),
    ("GRU", dict(bidirectional=True)),
]


def test_round_trip_is_exact_and_keeps_order_and_dtypes(tmp_path):
    path = tmp_path / "weights.safetensors"
    saved = {"z.weight": np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32),
             "a.bias": np.arange(4.0), "steps": np.array(7, np.int64), "mask": np.array([True, False]),
             "empty": np.zeros((0, 3), np.float16), "scalar": np.float32(2.5),
             "strided": np.arange(12.0).reshape(3, 4)[:, ::2]}
    nn.save(saved, path)
    loaded = nn.load(path)
    assert list(loaded) == list(saved)
    for name, value in saved.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == np.shape(value), name
        np.testing.assert_array_equal(loaded[name], value)
    assert sorted(os.listdir(tmp_path)) == ["weights.safetensors"]


def test_big_endian_arrays_are_stored_little_endian_and_read_back_in_both_libraries(torch, tmp_path):
    import safetensors.torch

    path = tmp_path / "big_endian.safetensors"
    saved = {"w": (np.arange(6).reshape(2, 3) - 2.5).astype(">f4"),
             "steps": np.array([1, -2, 2 ** 40], ">i8")}
    assert all(value.dtype.byteorder == ">" for value in saved.values())
    nn.save(saved, path)
    loaded, theirs = nn.load(path), safetensors.torch.load_file(path)
    for name, value in saved.items():
        assert loaded[name].dtype == value.dtype.newbyteorder("<"), name  # the format's byte order
        np.testing.assert_array_equal(loaded[name], value)
        np.testing.assert_array_equal(theirs[name].numpy(), value)


def test_a_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "weights.safetensors"
    nn.save({"w": np.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"'nested' is a dict; a \.safetensors file holds a flat dict"):
        nn.save({"w": np.zeros(2), "nested": {"a": np.ones(1)}}, path)
    with pytest.raises(TypeError, match=r"'name' is a str; a \.safetensors file holds"):
        nn.save({"name": "lstm"}, path)
    with pytest.raises(TypeError, match=r"'c' is a ndarray of dtype complex128"):
        nn.save({"c": np.ones(2, complex)}, path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["weights.safetensors"]


def test_truncated_damaged_and_foreign_files_are_clear_errors_and_change_no_model(tmp_path):
    model = nn.LSTM(3, 4)
    path = tmp_path / "model.safetensors"
    nn.save(model.state_dict(), path)
    data = path.read_bytes()
    before = model.state_dict()
    flipped = bytearray(data)
    flipped[-5] ^= 0x10  # a bit of the last array's data
    cases = [(data[:-7], "not a readable .safetensors file"), (data[:5], "not a readable"),
             (b"PK\x03\x04" + data[4:], "not a readable"),
             (bytes(flipped), "is damaged: array .* fails its checksum")]
    for damaged, message in cases:
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match=message):
            model.load_state_dict(nn.load(path))
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(value, before[name])
    with pytest.raises(FileNotFoundError, match="nn.load: no such file"):
        nn.load(tmp_path / "missing.safetensors")


def test_pytorch_reads_what_tensorgrad_writes_and_back(torch, tmp_path):
    import safetensors.torch

    model = nn.Linear(3, 2)
    path = tmp_path / "linear.safetensors"
    nn.save(model.state_dict(), path)
    theirs = torch.nn.Linear(3, 2)
    theirs.load_state_dict(safetensors.torch.load_file(path))
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(theirs(torch.tensor(x)).detach().numpy(), model(x).data, rtol=1e-5, atol=1e-6)

    back = tmp_path / "from_torch.safetensors"
    torch.nn.init.normal_(theirs.weight)
    safetensors.torch.save_file(theirs.state_dict(), back)
    model.load_state_dict(nn.load(back))  # no tensorgrad checksum: loads unchecked
    np.testing.assert_array_equal(model.weight.data, theirs.weight.detach().numpy())


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("kind, options", LAYERS)
def test_every_recurrent_layer_gives_the_same_outputs_in_pytorch(torch, tmp_path, kind, options, dtype, tol):
    import safetensors.torch

    ours = getattr(nn, kind)(3, 5, **options).to(dtype)
    path = tmp_path / "layer.safetensors"
    nn.save(ours.state_dict(), path)
    theirs = getattr(torch.nn, kind)(3, 5, **options).to(getattr(torch, np.dtype(dtype).name))
    theirs.load_state_dict(safetensors.torch.load_file(path))
    x = np.random.default_rng(2).standard_normal((4, 2, 3)).astype(dtype)
    out, state = ours(x)
    out_ref, state_ref = theirs(torch.tensor(x))
    np.testing.assert_allclose(out.data, out_ref.detach().numpy(), rtol=tol, atol=tol)
    for s, s_ref in zip(state if kind == "LSTM" else (state,), state_ref if kind == "LSTM" else (state_ref,)):
        np.testing.assert_allclose(s.data, s_ref.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("model", ["lstm", "gru", "rnn"])
def test_char_rnn_gives_the_same_logits_in_pytorch(torch, tmp_path, model):
    import safetensors.torch

    TorchCharRNN = load_example().CharRNN
    tg.manual_seed(0)
    ours = nn.CharRNN(11, hidden_size=6, num_layers=2, model=model).double()
    path = tmp_path / "charrnn.safetensors"
    nn.save(ours.state_dict(), path)
    theirs = TorchCharRNN(11, 6, 2, model).double()
    theirs.load_state_dict(safetensors.torch.load_file(path))
    ids = np.random.default_rng(3).integers(0, 11, (7, 3))
    logits, _ = ours(ids)
    logits_ref, _ = theirs(torch.tensor(ids))
    np.testing.assert_allclose(logits.data, logits_ref.detach().numpy(), rtol=1e-10, atol=1e-10)
