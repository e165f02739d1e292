"""nn.MultiheadAttention, nn.TransformerEncoderLayer and nn.TransformerEncoder against PyTorch with
the same weights (outputs, attention weights, gradients of the inputs and of every parameter by
name), their initialisation, and bad input."""

import numpy as np
import pytest
from replays import assert_replays_as_eager

import nn
import tensorgrad as tg

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


def torch_state(module):
    return {name: value.detach().numpy() for name, value in module.state_dict().items()}


def same_weights(torch, ours, theirs, dtype):
    theirs.to(getattr(torch, np.dtype(dtype).name)).train()  # training mode: no fast path
    ours.to(dtype).load_state_dict(torch_state(theirs))
    return ours.train()


def as_torch(torch, value):
    return torch.tensor(value) if isinstance(value, np.ndarray) else value


def check_gradients(torch, ours, theirs, inputs_ours, inputs_theirs, y_ours, y_theirs, tol):
    w = np.random.default_rng(1).standard_normal(y_ours.shape).astype(y_ours.dtype)
    (y_ours * w).sum().backward()
    (y_theirs * torch.tensor(w)).sum().backward()
    for a, b in zip(inputs_ours, inputs_theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=tol, atol=tol)
    theirs_params = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(theirs_params)
    for name, param in ours.named_parameters():
        assert param.grad.dtype == y_ours.dtype
        np.testing.assert_allclose(param.grad.data, theirs_params[name].grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=name)


L, S, B, E, H = 4, 5, 3, 8, 2
MHA_CASES = {
    "self": {},
    "cross": {"cross": True},
    "batch_first": {"batch_first": True},
    "unbatched": {"unbatched": True},
    "no_bias": {"bias": False},
    "per_head_weights": {"average_attn_weights": False},
    "no_weights": {"need_weights": False},
    "key_padding_bool": {"key_padding_mask": "bool"},
    "key_padding_float": {"key_padding_mask": "float"},
    "attn_mask_bool": {"attn_mask": "bool"},
    "attn_mask_float_3d": {"attn_mask": "float3d"},
    "both_masks": {"attn_mask": "bool", "key_padding_mask": "bool"},
    "causal": {"is_causal": True},
}


def mha_masks(rng, case, Lq, Sk):
    masks = {}
    if case.get("key_padding_mask") == "bool":
        masks["key_padding_mask"] = np.zeros((B, Sk), dtype=bool)
        masks["key_padding_mask"][1, -2:] = True  # the second sequence has two padding positions
        masks["key_padding_mask"][2, -1:] = True
    elif case.get("key_padding_mask") == "float":
        masks["key_padding_mask"] = rng.standard_normal((B, Sk))
    if case.get("attn_mask") == "bool":
        masks["attn_mask"] = rng.random((Lq, Sk)) < 0.3
        masks["attn_mask"][:, 0] = False  # every query sees key 0
    elif case.get("attn_mask") == "float3d":
        masks["attn_mask"] = rng.standard_normal((B * H, Lq, Sk))
    return masks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(MHA_CASES))
def test_multihead_attention_matches_torch(torch, rng, name, dtype):
    case = MHA_CASES[name]
    batch_first, bias = case.get("batch_first", False), case.get("bias", True)
    tg.manual_seed(0)
    ours = nn.MultiheadAttention(E, H, bias=bias, batch_first=batch_first)
    theirs = torch.nn.MultiheadAttention(E, H, bias=bias, batch_first=batch_first)
    same_weights(torch, ours, theirs, dtype)
    Sk = S if case.get("cross") else L

    def shaped(length):
        if case.get("unbatched"):
            return rng.standard_normal((length, E)).astype(dtype)
        shape = (B, length, E) if batch_first else (length, B, E)
        return rng.standard_normal(shape).astype(dtype)

    arrays = [shaped(L)] if not case.get("cross") else [shaped(L), shaped(S), shaped(S)]
    masks = mha_masks(rng, case, L, Sk)
    masks = {k: (v.astype(dtype) if v.dtype.kind == "f" else v) for k, v in masks.items()}
    if case.get("unbatched") and "key_padding_mask" in masks:
        masks["key_padding_mask"] = masks["key_padding_mask"][0]
    kwargs = dict(masks, need_weights=case.get("need_weights", True),
                  average_attn_weights=case.get("average_attn_weights", True))
    torch_kwargs = {k: as_torch(torch, v) for k, v in kwargs.items()}
    if case.get("is_causal"):  # PyTorch wants the mask beside its is_causal hint
        kwargs["is_causal"] = True
        torch_kwargs.update(is_causal=True, attn_mask=torch.nn.Transformer.generate_square_subsequent_mask(
            L, dtype=getattr(torch, np.dtype(dtype).name)))
    inputs_ours = [tg.Variable(a) for a in arrays]
    inputs_theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    qkv_ours = inputs_ours * 3 if len(arrays) == 1 else inputs_ours
    qkv_theirs = inputs_theirs * 3 if len(arrays) == 1 else inputs_theirs
    y, w = ours(*qkv_ours, **kwargs)
    t, tw = theirs(*qkv_theirs, **torch_kwargs)
    tol = TOLERANCE[dtype]
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, t.detach().numpy(), rtol=tol, atol=tol)
    if kwargs["need_weights"]:
        assert w.shape == tuple(tw.shape)
        np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=tol, atol=tol)
    else:
        assert w is None and tw is None
    check_gradients(torch, ours, theirs, inputs_ours, inputs_theirs, y, t, tol)


@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
def test_self_attention_takes_one_path_for_an_array_and_a_variable(rng, layout):
    """One array given as query, key and value is self-attention, as one Variable is: one
    in-projection matmul either way (three, as for distinct inputs, rounded differently by
    some BLAS kernels, so that a jitted call and its eager run disagreed in the last bit),
    in every layout (batch-first and unbatched inputs took the three-matmul path)."""
    mha = nn.MultiheadAttention(E, H, batch_first=layout == "batch_first")
    shape = {"time_major": (L, B, E), "batch_first": (B, L, E), "unbatched": (L, E)}[layout]
    x = rng.standard_normal(shape).astype(np.float32)

    def linears(y):
        seen, todo = set(), [y.creator]
        while todo:
            function = todo.pop()
            if function not in seen:
                seen.add(function)
                todo.extend(v.creator for v in function.inputs if v.creator is not None)
        return sum(function.name == "linear" for function in seen)

    v = tg.Variable(x)
    assert linears(mha(x, x, x)[0]) == linears(mha(v, v, v)[0]) == 2  # in- and out-projection
    np.testing.assert_array_equal(mha(x, x, x)[0].data, mha(v, v, v)[0].data)


def test_multihead_attention_dropout_in_training_only(rng):
    tg.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, dropout=0.5)
    x = rng.standard_normal((L, B, E)).astype(np.float32)
    _, w_train = mha(x, x, x, average_attn_weights=False)
    _, w_eval = mha.eval()(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(w_eval.data.sum(-1), 1, rtol=1e-6)
    dropped = w_train.data == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(w_train.data[~dropped], 2 * w_eval.data[~dropped], rtol=1e-6)  # 1/(1-p)


def test_multihead_attention_initialisation():
    tg.manual_seed(0)
    mha = nn.MultiheadAttention(64, 4)
    assert [(n, p.shape, p.dtype) for n, p in mha.named_parameters()] == [
        ("in_proj_weight", (192, 64), np.float32), ("in_proj_bias", (192,), np.float32),
        ("out_proj.weight", (64, 64), np.float32), ("out_proj.bias", (64,), np.float32)]
    xavier = np.sqrt(6 / (64 + 192))  # PyTorch's xavier_uniform_ over the packed (3E, E) matrix
    assert xavier * 0.98 < np.abs(mha.in_proj_weight.data).max() <= xavier
    assert np.abs(mha.out_proj.weight.data).max() <= 1 / 8
    assert not mha.in_proj_bias.data.any() and not mha.out_proj.bias.data.any()


def test_multihead_attention_bad_input(rng):
    with pytest.raises(ValueError, match="embed_dim=10 must be a positive multiple of num_heads=3"):
        nn.MultiheadAttention(10, 3)
    mha = nn.MultiheadAttention(E, H)
    x = rng.standard_normal((L, B, E)).astype(np.float32)
    with pytest.raises(tg.ShapeError, match=r"embed_dim=8, got shapes \(4, 3, 6\)"):
        mha(x[..., :6], x, x)
    with pytest.raises(tg.ShapeError, match=r"key_padding_mask must have shape \(3, 4\).*got \(4, 3\)"):
        mha(x, x, x, key_padding_mask=np.zeros((L, B), dtype=bool))
    with pytest.raises(tg.ShapeError, match=r"attn_mask must have shape \(L, S\) = \(4, 4\) or.*\(6, 4, 4\)"
                       r", got \(3, 4, 4\)"):
        mha(x, x, x, attn_mask=np.zeros((3, L, L), dtype=bool))
    with pytest.raises(TypeError, match="boolean or floating-point, got dtype int64"):
        mha(x, x, x, attn_mask=np.zeros((L, L), dtype=np.int64))
    with pytest.raises(TypeError, match="key_padding_mask must be boolean or floating-point, got dtype int"):
        mha(x, x, x, key_padding_mask=np.zeros((B, L), dtype=np.int64))
    with pytest.raises(tg.ShapeError, match="one batch size"):
        mha(x, x[:, :2], x[:, :2])
    hidden = np.zeros((B, L), dtype=bool)
    hidden[2] = True
    with pytest.raises(ValueError, match="query 0 of sequence 2 no key to attend to"):
        mha(x, x, x, key_padding_mask=hidden)


def sequence_needing_grad(rng):
    return tg.Variable(rng.standard_normal((L, B, E)).astype(np.float32), requires_grad=True)


def changing_mha_masks(rng, kinds, calls=4):
    """``calls`` dicts of MultiheadAttention masks for self-attention over L positions, new values
    at each call; ``kinds`` maps each mask's name to "bool", "float" or (attn_mask) "float3d".
    Every query sees key 0; a floating mask blocks some others with -inf."""
    shapes = {"key_padding_mask": (B, L), "attn_mask": (L, L)}
    calls_masks = []
    for _ in range(calls):
        masks = {}
        for name, kind in kinds.items():
            shape = (B * H, L, L) if kind == "float3d" else shapes[name]
            mask = rng.random(shape) < 0.4
            if kind != "bool":
                mask = np.where(mask, -np.inf, rng.standard_normal(shape))
            mask[..., 0] = False if kind == "bool" else 0.0
            masks[name] = mask
        calls_masks.append(masks)
    return calls_masks


JIT_MASK_CASES = {
    "key_padding_bool": {"key_padding_mask": "bool"},
    "key_padding_float": {"key_padding_mask": "float"},
    "attn_mask_bool": {"attn_mask": "bool"},
    "attn_mask_float": {"attn_mask": "float"},
    "attn_mask_float_3d": {"attn_mask": "float3d"},
    "both_bool": {"attn_mask": "bool", "key_padding_mask": "bool"},
    "float_and_bool": {"attn_mask": "float", "key_padding_mask": "bool"},
}


@pytest.mark.parametrize("as_variables", [False, True])
@pytest.mark.parametrize("case", sorted(JIT_MASK_CASES))
def test_multihead_attention_under_jit_reads_each_calls_masks(rng, case, as_variables):
    """Masks are inputs of the plan: each replay gives eager mode's outputs, attention weights
    and gradients for its own masks, bit for bit."""
    tg.manual_seed(0)
    mha = nn.MultiheadAttention(E, H)
    calls = []
    for masks in changing_mha_masks(rng, JIT_MASK_CASES[case]):
        if as_variables:
            masks = {name: tg.Variable(mask) for name, mask in masks.items()}
        calls.append((sequence_needing_grad(rng), masks))
    assert_replays_as_eager(lambda x, masks: mha(x, x, x, **masks), calls, list(mha.parameters()))


def test_multihead_attention_under_jit_checks_each_calls_masks(rng):
    """A query left with no key to attend to is the eager error at every replay, and the plan
    replays the next call as usual."""
    mha = nn.MultiheadAttention(E, H)
    jitted = tg.jit(lambda x, kpm: mha(x, x, x, key_padding_mask=kpm)[0])
    x = rng.standard_normal((L, B, E)).astype(np.float32)
    visible = np.zeros((B, L), dtype=bool)
    hidden = visible.copy()
    hidden[2] = True
    message = (r"^MultiheadAttention: the masks leave query 0 of sequence 2 no key to attend to "
               r"\(key_padding_mask hides a whole sequence, or attn_mask a whole row\); "
               r"PyTorch gives NaN there$")
    jitted(x, visible)
    for _ in range(3):  # replayed step by step, then as compiled source
        for f in (jitted, jitted.eager):
            with pytest.raises(ValueError, match=message):
                f(x, hidden)
        np.testing.assert_array_equal(jitted(x, visible).data, jitted.eager(x, visible).data)
    assert jitted.traces == 1


def test_a_padding_mask_computed_in_the_function_from_its_ids_replays_as_eager(rng):
    """The usual pattern, key_padding_mask = ids == PAD, computed inside the jitted function."""
    tg.manual_seed(0)
    embedding, mha = nn.Embedding(10, E, padding_idx=0), nn.MultiheadAttention(E, H, batch_first=True)

    def f(ids):
        x = embedding(ids)
        return mha(x, x, x, key_padding_mask=ids == 0)

    calls = []
    for _ in range(4):
        ids = rng.integers(1, 10, size=(B, L))
        ids[:, 1:][rng.random((B, L - 1)) < 0.5] = 0
        calls.append((ids,))
    assert_replays_as_eager(f, calls, list(mha.parameters()) + list(embedding.parameters()))


LAYER_CASES = {
    "post_norm": {},
    "pre_norm": {"norm_first": True},
    "gelu": {"activation": "gelu"},
    "no_bias": {"bias": False},
    "batch_first": {"batch_first": True},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masks", ["none", "src_mask", "padding", "causal"])
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_encoder_layer_matches_torch(torch, rng, name, masks, dtype):
    config = LAYER_CASES[name]
    tg.manual_seed(0)
    ours = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0, **config)
    theirs = torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0, **config)
    check_encoder(torch, rng, ours, theirs, masks, dtype, config.get("batch_first", False))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("final_norm", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_matches_torch(torch, rng, norm_first, final_norm, dtype):
    tg.manual_seed(0)
    layer = dict(dim_feedforward=16, dropout=0.0, norm_first=norm_first)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, **layer), 2,
                                 nn.LayerNorm(E) if final_norm else None)
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, H, **layer), 2,
                                         torch.nn.LayerNorm(E) if final_norm else None,
                                         enable_nested_tensor=False)
    with torch.no_grad():  # give the two layers different weights, so their order matters
        for p in theirs.layers[1].parameters():
            p.add_(0.1 * torch.randn_like(p))
    check_encoder(torch, rng, ours, theirs, "padding", dtype, False)


def check_encoder(torch, rng, ours, theirs, masks, dtype, batch_first):
    same_weights(torch, ours, theirs, dtype)
    x = rng.standard_normal((B, L, E) if batch_first else (L, B, E)).astype(dtype)
    kwargs = {}
    if masks == "src_mask":
        kwargs["src_mask"] = rng.standard_normal((L, L)).astype(dtype)
    elif masks == "padding":
        kwargs["src_key_padding_mask"] = np.array([[False] * L, [False] * (L - 1) + [True],
                                                   [False] * 2 + [True] * (L - 2)])
    torch_kwargs = {k: as_torch(torch, v) for k, v in kwargs.items()}
    if masks == "causal":
        kwargs["is_causal"] = True
        torch_kwargs["is_causal"] = True
        torch_dtype = getattr(torch, np.dtype(dtype).name)
        causal = torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=torch_dtype)
        torch_kwargs["src_mask" if isinstance(theirs, torch.nn.TransformerEncoderLayer) else "mask"] = causal
    if isinstance(ours, nn.TransformerEncoder) and "src_mask" in kwargs:
        kwargs["mask"] = kwargs.pop("src_mask")
        torch_kwargs["mask"] = torch_kwargs.pop("src_mask")
    x_ours, x_theirs = tg.Variable(x), torch.tensor(x, requires_grad=True)
    y, t = ours(x_ours, **kwargs), theirs(x_theirs, **torch_kwargs)
    tol = TOLERANCE[dtype]
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, t.detach().numpy(), rtol=tol, atol=tol)
    check_gradients(torch, ours, theirs, [x_ours], [x_theirs], y, t, tol)


def test_state_dict_round_trip_with_torch(torch, rng):
    tg.manual_seed(0)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0), 2)
    theirs = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0), 2,
        enable_nested_tensor=False)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((L, B, E)).astype(np.float32)
    np.testing.assert_allclose(ours(x).data, theirs.train()(torch.tensor(x)).detach().numpy(), atol=1e-5)


def test_encoder_layers_start_as_copies_and_are_separate():
    tg.manual_seed(0)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, dim_feedforward=16), 3)
    first, second = encoder.layers[0], encoder.layers[1]
    np.testing.assert_array_equal(first.linear1.weight.data, second.linear1.weight.data)
    assert first.linear1.weight is not second.linear1.weight
    assert len(list(encoder.parameters())) == 3 * 12


def test_encoder_layer_bad_input():
    with pytest.raises(ValueError, match="activation must be one of \\['gelu', 'relu'\\], got 'tanh'"):
        nn.TransformerEncoderLayer(E, H, activation="tanh")
    with pytest.raises(ValueError, match="num_layers must be at least 1"):
        nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H), 0)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, dim_feedforward=16), 2)
    hidden = np.zeros((B, L), dtype=bool)
    hidden[1] = True
    with pytest.raises(ValueError, match="query 0 of sequence 1 no key to attend to"):
        encoder(np.zeros((L, B, E), np.float32), src_key_padding_mask=hidden)


def test_encoder_layer_under_jit_reads_each_calls_padding_mask(rng):
    """src_key_padding_mask changing from call to call, in training mode (dropout on)."""
    tg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.1)
    calls = [(sequence_needing_grad(rng), masks["key_padding_mask"])
             for masks in changing_mha_masks(rng, {"key_padding_mask": "bool"})]
    assert_replays_as_eager(lambda x, kpm: layer(x, src_key_padding_mask=kpm), calls,
                            list(layer.parameters()))
