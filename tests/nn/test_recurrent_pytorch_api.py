"""PyTorch's recurrent API, complete: LSTM projections (proj_size), PackedSequence in and out of
RNN/LSTM/GRU, and reset_parameters, against PyTorch with the same weights."""

import numpy as np
import pytest

import nn
import tensorgrad as tg
from nn.utils.rnn import PackedSequence, pack_padded_sequence

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}


def twins(torch, kind, dtype, **options):
    ours = getattr(nn, kind)(3, 5, **options).to(dtype)
    theirs = getattr(torch.nn, kind)(3, 5, **options).to(getattr(torch, np.dtype(dtype).name))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def states(state):
    return state if isinstance(state, tuple) else (state,)


def assert_close(ours, theirs, tol):
    np.testing.assert_allclose(ours, theirs.detach().numpy() if hasattr(theirs, "detach") else theirs,
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [dict(proj_size=2), dict(proj_size=3, num_layers=2, bidirectional=True),
                                     dict(proj_size=1, batch_first=True, bias=False)])
def test_lstm_with_projections_is_pytorchs(torch, rng, dtype, options):
    tol = TOLERANCE[dtype]
    ours, theirs = twins(torch, "LSTM", dtype, **options)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert repr(ours) == repr(theirs)
    stacked = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    x = rng.standard_normal((2, 4, 3) if options.get("batch_first") else (4, 2, 3)).astype(dtype)
    h0 = rng.standard_normal((stacked, 2, options["proj_size"])).astype(dtype)
    c0 = rng.standard_normal((stacked, 2, 5)).astype(dtype)
    inputs = [tg.Variable(a) for a in (x, h0, c0)]
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, h0, c0)]
    out, (h_n, c_n) = ours(inputs[0], tuple(inputs[1:]))
    ref, (ref_h, ref_c) = theirs(tensors[0], tuple(tensors[1:]))
    assert h_n.shape == tuple(ref_h.shape) and c_n.shape == tuple(ref_c.shape) and out.dtype == dtype
    for a, b in [(out, ref), (h_n, ref_h), (c_n, ref_c)]:
        assert_close(a.data, b, tol)
    w = rng.standard_normal(out.shape).astype(dtype)
    ((out * w).sum() + h_n.sum() + (c_n * c_n).sum()).backward()
    ((ref * torch.tensor(w)).sum() + ref_h.sum() + (ref_c * ref_c).sum()).backward()
    for v, t in zip(inputs, tensors, strict=True):
        assert_close(v.grad.data, t.grad, tol)
    params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        assert_close(params[name].grad.data, p.grad, tol)


def test_lstm_with_projections_on_padded_unbatched_and_checked(torch, rng):
    ours, theirs = twins(torch, "LSTM", np.float64, proj_size=2, bidirectional=True)
    x = rng.standard_normal((5, 3))
    out, (h, c) = ours(x)
    ref, (ref_h, ref_c) = theirs(torch.tensor(x))
    assert out.shape == (5, 4) and h.shape == (2, 2) and c.shape == (2, 5)
    for a, b in [(out, ref), (h, ref_h), (c, ref_c)]:
        assert_close(a.data, b, 1e-10)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size, got proj_size=5"):
        nn.LSTM(3, 5, proj_size=5)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero"):
        nn.LSTM(3, 5, proj_size=-1)
    with pytest.raises(ValueError, match="proj_size=2 does not combine with peephole=True"):
        nn.LSTM(3, 5, proj_size=2, peephole=True)
    with pytest.raises(tg.ShapeError, match=r"h_0 has shape \(2, 3, 5\), expected \(2, 3, 2\)"):
        ours(rng.standard_normal((4, 3, 3)), (np.zeros((2, 3, 5)), np.zeros((2, 3, 5))))


@pytest.mark.parametrize("kind, options", [("RNN", {}), ("GRU", dict(num_layers=2, bidirectional=True)),
                                           ("LSTM", dict(bidirectional=True, proj_size=2)),
                                           ("LSTM", dict(num_layers=2, batch_first=True))])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_layers_take_and_return_packed_sequences_as_pytorch(torch, rng, kind, options, enforce_sorted):
    ours, theirs = twins(torch, kind, np.float64, **options)
    lengths = [5, 4, 2] if enforce_sorted else [2, 5, 4]
    batch_first = options.get("batch_first", False)
    x = rng.standard_normal((3, 5, 3) if batch_first else (5, 3, 3))
    xv, xt = tg.Variable(x), torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(xv, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    ref_packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first,
                                                         enforce_sorted=enforce_sorted)
    out, state = ours(packed)
    ref, ref_state = theirs(ref_packed)
    assert isinstance(out, PackedSequence)
    assert_close(out.data.data, ref.data, 1e-10)
    np.testing.assert_array_equal(out.batch_sizes, ref.batch_sizes.numpy())
    if not enforce_sorted:
        np.testing.assert_array_equal(out.sorted_indices, ref.sorted_indices.numpy())
    for s, r in zip(states(state), states(ref_state), strict=True):
        assert_close(s.data, r, 1e-10)
    w = rng.standard_normal(out.data.shape)
    ((out.data * w).sum() + sum(s.sum() for s in states(state))).backward()
    ((ref.data * torch.tensor(w)).sum() + sum(s.sum() for s in states(ref_state))).backward()
    assert_close(xv.grad.data, xt.grad, 1e-10)
    params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        assert_close(params[name].grad.data, p.grad, 1e-10)


def test_a_packed_sequence_and_its_hooks(rng):
    layer = nn.GRU(3, 4)
    calls = []
    layer.register_forward_hook(lambda m, args, out: calls.append(type(args[0]).__name__))
    packed = pack_padded_sequence(rng.standard_normal((5, 2, 3)).astype(np.float32), [5, 3])
    out, _ = layer(packed)
    assert calls == ["PackedSequence"]  # once, with what the user passed
    with pytest.raises(ValueError, match="GRU: a PackedSequence carries its lengths"):
        layer(packed, lengths=[5, 3])
    with pytest.raises(ValueError, match=r"GRU: batch_sizes \[2, 2, 1, 2\] must be positive and "
                                         r"non-increasing"):
        layer(PackedSequence(packed.data[:7], np.array([2, 2, 1, 2])))


@pytest.mark.parametrize("make", [lambda: nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2),
                                  lambda: nn.GRU(3, 4, layer_norm=True), lambda: nn.RNNCell(3, 4),
                                  lambda: nn.LSTMCell(3, 4, forget_bias=1.0)])
def test_reset_parameters_draws_the_layers_initialisation_again(make):
    tg.manual_seed(5)
    fresh = make()
    tg.manual_seed(5)
    module = make().double()
    for p in module.parameters():
        p.data[...] = 9.0
    tg.manual_seed(5)
    module.reset_parameters()
    for (name, p), q in zip(module.named_parameters(), fresh.parameters(), strict=True):
        assert p.dtype == np.float64, name
        np.testing.assert_array_equal(p.data, q.data.astype(np.float64), err_msg=name)
