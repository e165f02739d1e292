"""nn.save / nn.load (round trips, atomic writes, damaged files) and Module.load_state_dict
(round trips with PyTorch, and failures that change nothing)."""

import os
import re

import numpy as np
import pytest

import nn
import tensorgrad as tg


def nested_checkpoint():
    return {
        "model": {"layers.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
                  "scalar": np.array(2.5), "empty": np.zeros((0, 3))},
        "optimizer": {"state": {}, "param_groups": {"0": {"lr": 0.01, "amsgrad": False,
                                                          "betas": np.array([0.9, 0.999])}}},
        "config": {"hidden": 64, "model": "lstm", "clip": 5.0, "seed": np.int64(7), "big": 2 ** 62},
        "vocab": "\nab ü🙂",
    }


def assert_same(loaded, saved):
    assert list(loaded) == list(saved)
    for key, value in saved.items():
        if isinstance(value, dict):
            assert_same(loaded[key], value)
        else:
            assert type(loaded[key]) is type(value), key
            if isinstance(value, np.ndarray | np.generic):
                assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
            np.testing.assert_array_equal(loaded[key], value)


def test_round_trip_keeps_nesting_types_and_dtypes(tmp_path):
    path = tmp_path / "checkpoint.npz"
    saved = nested_checkpoint()
    nn.save(saved, path)
    assert_same(nn.load(path), saved)
    assert_same(nn.load(str(path)), saved)
    with np.load(path, allow_pickle=False) as archive:  # a plain .npz with readable entry names
        np.testing.assert_array_equal(archive["model/layers.0.weight"], saved["model"]["layers.0.weight"])
        assert archive["config/model"].dtype.kind == "U"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]


def test_model_and_optimizer_resume_from_a_checkpoint(tmp_path):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Embedding(5, 4, padding_idx=0), nn.LayerNorm(4), nn.Linear(4, 5))
    optimizer = nn.optim.Adam(model.parameters(), lr=0.01)
    ids, targets = np.array([[1, 2, 0], [3, 4, 1]]), np.array([[2, 0, 1], [4, 1, 2]])

    def step(model, optimizer):
        optimizer.zero_grad()
        loss = nn.softmax_cross_entropy(model(ids).transpose(0, 2, 1), targets, ignore_index=0)
        loss.backward()
        optimizer.step()

    step(model, optimizer)
    nn.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "ckpt.npz")
    step(model, optimizer)

    tg.manual_seed(1)
    resumed = nn.Sequential(nn.Embedding(5, 4, padding_idx=0), nn.LayerNorm(4), nn.Linear(4, 5))
    resumed_optimizer = nn.optim.Adam(resumed.parameters())
    saved = nn.load(tmp_path / "ckpt.npz")
    resumed.load_state_dict(saved["model"])
    resumed_optimizer.load_state_dict(saved["optimizer"])
    step(resumed, resumed_optimizer)
    for (name, p), q in zip(model.named_parameters(), resumed.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_state_dict_round_trip_torch_to_tensorgrad_to_torch(torch, tmp_path):
    theirs = torch.nn.Sequential(torch.nn.Embedding(6, 4, padding_idx=1), torch.nn.LayerNorm(4),
                                 torch.nn.Linear(4, 3))
    ours = nn.Sequential(nn.Embedding(6, 4, padding_idx=1), nn.LayerNorm(4), nn.Linear(4, 3))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ids = np.array([[0, 1, 5], [2, 3, 4]])
    expected = theirs(torch.tensor(ids)).detach().numpy()
    np.testing.assert_allclose(ours(ids).data, expected, rtol=1e-6, atol=1e-6)

    nn.save(ours.state_dict(), tmp_path / "model.npz")
    back = torch.nn.Sequential(torch.nn.Embedding(6, 4, padding_idx=1), torch.nn.LayerNorm(4),
                               torch.nn.Linear(4, 3))
    back.load_state_dict({k: torch.from_numpy(v) for k, v in nn.load(tmp_path / "model.npz").items()})
    np.testing.assert_array_equal(back(torch.tensor(ids)).detach().numpy(), expected)


def test_a_plain_npz_loads_as_a_flat_dict(tmp_path):
    np.savez(tmp_path / "weights.npz", **{"layer/weight": np.ones(3), "bias": np.zeros(2)})
    loaded = nn.load(tmp_path / "weights.npz")
    assert sorted(loaded) == ["bias", "layer/weight"]
    np.testing.assert_array_equal(loaded["layer/weight"], np.ones(3))


# ------------------------------------------------------------------------- writing atomically
@pytest.fixture
def existing(tmp_path):
    """A checkpoint already on disk, and what it holds."""
    path = tmp_path / "checkpoint.npz"
    old = {"model": {"weight": np.ones((2, 2))}, "step": 1}
    nn.save(old, path)
    return path, old


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary(existing, monkeypatch):
    path, old = existing
    write_array = np.lib.format.write_array

    def fail_midway(file, array, **kwargs):
        write_array(file, array, **kwargs)  # some bytes reach the temporary file first
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        nn.save({"model": {"weight": np.zeros((2, 2))}, "step": 2}, path)
    monkeypatch.undo()
    assert_same(nn.load(path), old)
    assert os.listdir(path.parent) == [path.name]


def test_a_failure_at_the_rename_leaves_the_old_file_and_no_temporary(existing, monkeypatch):
    path, old = existing

    def fail(*args):
        raise PermissionError("rename refused")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(PermissionError):
        nn.save({"step": 2}, path)
    monkeypatch.undo()
    assert_same(nn.load(path), old)
    assert os.listdir(path.parent) == [path.name]


@pytest.mark.parametrize("obj,error,message", [
    ([np.ones(2)], TypeError, "expected a dict, got list"),
    ({"a": {"b": [1, 2]}}, TypeError, "'a/b' is a list"),
    ({"a": None}, TypeError, "'a' is a NoneType"),
    ({"a": np.array([{}, 1], dtype=object)}, TypeError, "'a' would be stored as an object array"),
    ({"a": 2 ** 70}, TypeError, "object array"),
    ({"a/b": np.ones(2)}, ValueError, "key 'a/b'"),
    ({"a": {1: np.ones(2)}}, ValueError, "key 1 at 'a'"),
    ({"__layout__": 1}, ValueError, "reserved"),
])
def test_unsavable_objects_are_errors_that_write_nothing(existing, obj, error, message):
    path, old = existing
    with pytest.raises(error, match=message):
        nn.save(obj, path)
    assert_same(nn.load(path), old)
    assert os.listdir(path.parent) == [path.name]


# ------------------------------------------------------------------------- reading damaged files
def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nn.load: no such file: .*nothing.npz"):
        nn.load(tmp_path / "nothing.npz")
    for directory in (tmp_path, tmp_path / "weights.safetensors"):
        directory.mkdir(exist_ok=True)
        with pytest.raises(IsADirectoryError, match=re.escape(f"nn.load: '{directory}' is a directory")):
            nn.load(directory)


def test_truncated_files_are_clear_errors(existing):
    path, _ = existing
    content = path.read_bytes()
    for size in (0, 10, 100, len(content) // 2, len(content) - 30, len(content) - 1):
        path.write_bytes(content[:size])
        with pytest.raises(ValueError, match=f"nn.load: .*{path.name}"):
            nn.load(path)


def test_a_flipped_bit_is_a_clear_error(existing):
    path, old = existing
    content = bytearray(path.read_bytes())
    start = content.find(old["model"]["weight"].tobytes())
    content[start + 5] ^= 1
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="checkpoint.npz' is damaged: entry model/weight.npy fails its "
                                         "checksum"):
        nn.load(path)


def test_files_of_another_format_are_clear_errors(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match="notes.npz' is not a readable .npz file"):
        nn.load(text)
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(ValueError, match="holds a single .npy array, not an .npz archive"):
        nn.load(tmp_path / "array.npy")


def test_an_object_array_is_never_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, weight=np.ones(2), evil=np.array([{"code": 1}], dtype=object))  # numpy pickles it
    with pytest.raises(ValueError, match=r"cannot read entry 'evil' of .*pickled.npz.*allow_pickle=False"):
        nn.load(path)


def test_a_damaged_layout_is_a_clear_error(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, **{"__layout__": np.array('{"a": "array"}'), "b": np.ones(2)})
    with pytest.raises(ValueError, match="odd.npz' is damaged"):
        nn.load(path)


# ------------------------------------------------------------------------- Module.load_state_dict
def small_model():
    tg.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))


@pytest.mark.parametrize("change,error,message", [
    (lambda s: s.pop("2.bias"), RuntimeError, r"missing keys \['2.bias'\]"),
    (lambda s: s.update(extra=np.ones(2)), RuntimeError, r"unexpected keys \['extra'\]"),
    (lambda s: s.update({"2.bias": np.ones(3)}), ValueError, r"'2.bias' has shape \(3,\)"),
    (lambda s: s.update({"2.bias": np.ones(2, np.int64)}), TypeError, "floating-point values"),
    (lambda s: s.update({"2.bias": [0.5, 0.5]}), TypeError, "must be an ndarray, got list"),
])
def test_failed_load_state_dict_changes_nothing(change, error, message):
    model = small_model()
    arrays = {name: p.data for name, p in model.named_parameters()}
    before = model.state_dict()
    new = {name: value + 1 for name, value in before.items()}  # a valid change of every value...
    change(new)  # ...but one entry is wrong; "2.*" are the last to be checked
    with pytest.raises(error, match=message):
        model.load_state_dict(new)
    for name, p in model.named_parameters():
        assert p.data is arrays[name]
        np.testing.assert_array_equal(p.data, before[name])


def test_load_state_dict_takes_a_mapping(tmp_path):
    model = small_model()
    pairs = list(model.state_dict().items())
    with pytest.raises(TypeError, match=r"load_state_dict: Sequential takes a state dict \(a mapping of "
                                        r"names to arrays\), got list"):
        model.load_state_dict(pairs)
    np.savez(tmp_path / "weights.npz", **dict(pairs))
    with np.load(tmp_path / "weights.npz") as archive:  # a mapping, not a dict
        model.load_state_dict(archive)


def test_load_state_dict_casts_copies_and_reports_missing_keys_when_not_strict():
    model = small_model()
    new = {name: value.astype(np.float64) + 1 for name, value in model.state_dict().items()}
    model.load_state_dict(new)
    for name, p in model.named_parameters():
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.data, new[name])
    new["0.weight"][:] = 0  # the model holds copies
    assert not (model[0].weight.data == 0).all()

    partial = {"0.bias": np.zeros(4), "unknown": np.zeros(1)}
    result = model.load_state_dict(partial, strict=False)
    assert "2.weight" in result.missing_keys and result.unexpected_keys == ["unknown"]
    np.testing.assert_array_equal(model[0].bias.data, 0)


def tied_twins(torch):
    """An embedding and an output layer sharing one weight, in both libraries."""
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight

    class TorchTied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(5, 3)
            self.head = torch.nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight

    return Tied(), TorchTied()


def test_a_tied_parameter_is_in_the_state_dict_under_each_name_as_in_pytorch(torch):
    ours, theirs = tied_twins(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["embed.weight", "head.weight"]
    for remove_duplicate in (True, False):
        assert [n for n, _ in ours.named_parameters(remove_duplicate=remove_duplicate)] == \
            [n for n, _ in theirs.named_parameters(remove_duplicate=remove_duplicate)]
    assert [n for n, _ in ours.named_parameters()] == ["embed.weight"]
    assert list(ours.parameters()) == [ours.embed.weight]  # optimizers step it once

    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})  # strict
    assert ours.head.weight is ours.embed.weight
    np.testing.assert_array_equal(ours.head.weight.data, theirs.embed.weight.detach().numpy())
    ours.embed.weight.data[...] = 0.5
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})  # strict
    assert (theirs.head.weight == 0.5).all()

    shared = nn.Sequential(nn.Linear(2, 2))
    shared.add_module("1", shared[0])  # a module under two names: its parameters under both
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 2))
    theirs.add_module("1", theirs[0])
    assert list(shared.state_dict()) == list(theirs.state_dict()) == ["0.weight", "0.bias",
                                                                      "1.weight", "1.bias"]


def test_a_tied_parameter_loads_from_either_name_but_not_from_two_different_values(torch):
    ours, _ = tied_twins(torch)
    result = ours.load_state_dict({"head.weight": np.ones((5, 3))}, strict=False)
    assert result.missing_keys == ["embed.weight"]  # as PyTorch's
    np.testing.assert_array_equal(ours.embed.weight.data, 1)

    weight = ours.embed.weight.data
    untied = {"embed.weight": np.zeros((5, 3)), "head.weight": np.ones((5, 3))}
    with pytest.raises(ValueError, match=r"'embed.weight' and 'head.weight' name one parameter shared in "
                                         r"Tied, but the state dict gives them different values"):
        ours.load_state_dict(untied)
    assert ours.embed.weight.data is weight


def test_a_child_holding_its_parent_is_walked_once():
    model = nn.Sequential(nn.Linear(2, 2))
    model[0].owner = model
    assert list(model.state_dict()) == ["0.weight", "0.bias"]
    assert [n for n, _ in model.named_modules(remove_duplicate=False)] == ["", "0"]
