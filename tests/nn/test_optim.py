"""SGD, Adagrad, RMSprop and Adam: several steps of every option combination reach PyTorch's
parameters; parameter groups, dtypes, state_dict round trips, and failed loads that change nothing."""

import itertools

import numpy as np
import pytest

import nn
import nn.optim
import tensorgrad.functions as F

STEPS = 5


def combinations(**options):
    """Every combination of the option values, as keyword dicts."""
    keys = list(options)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*options.values())]


CONFIGS = (
    [("SGD", dict(lr=0.1, **c)) for c in combinations(momentum=[0.0, 0.9], dampening=[0.0, 0.3],
                                                     weight_decay=[0.0, 0.1], nesterov=[False, True])
     if not (c["nesterov"] and (c["momentum"] == 0 or c["dampening"] != 0))]
    + [("Adagrad", dict(lr=0.1, **c)) for c in combinations(lr_decay=[0.0, 0.1], weight_decay=[0.0, 0.1],
                                                           initial_accumulator_value=[0.0, 0.5])]
    + [("RMSprop", dict(lr=0.01, alpha=0.9, **c)) for c in combinations(
        momentum=[0.0, 0.5], centered=[False, True], weight_decay=[0.0, 0.1])]
    + [("Adam", dict(lr=0.05, **c)) for c in combinations(betas=[(0.9, 0.999), (0.5, 0.8)],
                                                         weight_decay=[0.0, 0.1], amsgrad=[False, True])]
)


def initial_parameters(dtype=np.float64):
    """A two-layer network's weights, and one spare parameter the loss never uses."""
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (4,), (2, 4), (2,), (5,)]
    return [(rng.standard_normal(shape) * 0.5).astype(dtype) for shape in shapes]


def data(dtype=np.float64):
    rng = np.random.default_rng(1)
    return rng.standard_normal((8, 3)).astype(dtype), rng.standard_normal((8, 2)).astype(dtype)


def loss_of(params, x, y, lib):
    """The mean squared error of tanh(x W1ᵀ + b1) W2ᵀ + b2, written with ``lib`` (F or torch)."""
    w1, b1, w2, b2 = params[:4]
    if lib is F:
        return nn.mse_loss(F.linear(F.tanh(F.linear(x, w1, b1)), w2, b2), y)
    return lib.nn.functional.mse_loss(lib.tanh(x @ w1.T + b1) @ w2.T + b2, lib.tensor(y))


def train(optimizer, params, steps, dtype=np.float64):
    x, y = data(dtype)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_of(params, x, y, F).backward()
        optimizer.step()


def train_torch(torch, name, options, steps, dtype=np.float64):
    params = [torch.tensor(p, requires_grad=True) for p in initial_parameters(dtype)]
    optimizer = getattr(torch.optim, name)(params, **options)
    x, y = data(dtype)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_of(params, torch.tensor(x), y, torch).backward()
        optimizer.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("name,options", CONFIGS, ids=[f"{n}-{o}" for n, o in CONFIGS])
def test_steps_reach_torch_parameters(torch, name, options):
    params = [nn.Parameter(p) for p in initial_parameters()]
    optimizer = getattr(nn.optim, name)(params, **options)
    train(optimizer, params, STEPS)
    expected = train_torch(torch, name, options, STEPS)
    for i, (p, e) in enumerate(zip(params, expected, strict=True)):
        np.testing.assert_allclose(p.data, e, rtol=1e-10, atol=1e-10, err_msg=f"parameter {i}")
    np.testing.assert_array_equal(params[4].data, initial_parameters()[4])  # no gradient: skipped
    assert params[4] not in optimizer.state
    assert not np.allclose(params[0].data, initial_parameters()[0])


@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                          ("Adagrad", dict(lr_decay=0.01)),
                                          ("RMSprop", dict(momentum=0.5, centered=True)),
                                          ("Adam", dict(amsgrad=True))])
def test_float32_parameters_stay_float32_and_match_torch(torch, name, options):
    params = [nn.Parameter(p) for p in initial_parameters(np.float32)]
    arrays = [p.data for p in params]
    optimizer = getattr(nn.optim, name)(params, **options)
    train(optimizer, params, STEPS, np.float32)
    expected = train_torch(torch, name, options, STEPS, np.float32)
    for p, array, e in zip(params, arrays, expected, strict=True):
        assert p.data is array and p.dtype == np.float32  # updated in place, in float32
        np.testing.assert_allclose(p.data, e, rtol=1e-5, atol=1e-5)
    for state in optimizer.state.values():
        assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))


def test_parameter_groups_match_torch(torch):
    groups = lambda params: [{"params": params[:2]}, {"params": params[2:], "lr": 0.01, "momentum": 0.5}]  # noqa: E731
    params = [nn.Parameter(p) for p in initial_parameters()]
    optimizer = nn.optim.SGD(groups(params), lr=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.01]
    train(optimizer, params, STEPS)
    theirs = [torch.tensor(p, requires_grad=True) for p in initial_parameters()]
    torch_optimizer = torch.optim.SGD(groups(theirs), lr=0.1)
    x, y = data()
    for _ in range(STEPS):
        torch_optimizer.zero_grad()
        loss_of(theirs, torch.tensor(x), y, torch).backward()
        torch_optimizer.step()
    for p, e in zip(params, theirs, strict=True):
        np.testing.assert_allclose(p.data, e.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_zero_grad_and_a_changed_learning_rate():
    params = [nn.Parameter(p) for p in initial_parameters()]
    optimizer = nn.optim.SGD(params, lr=0.1)
    x, y = data()
    loss_of(params, x, y, F).backward()
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)
    loss_of(params, x, y, F).backward()
    grad, before = params[0].grad.data.copy(), params[0].data.copy()
    optimizer.param_groups[0]["lr"] = 0.5  # a schedule changes the group's lr
    optimizer.step()
    np.testing.assert_allclose(params[0].data, before - 0.5 * grad, rtol=1e-12)


def test_bad_hyperparameters_and_parameters():
    params = [nn.Parameter(p) for p in initial_parameters()]
    with pytest.raises(ValueError, match="invalid lr -0.1"):
        nn.optim.Adam(params, lr=-0.1)
    with pytest.raises(ValueError, match="betas must be two numbers in"):
        nn.optim.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        nn.optim.SGD(params, nesterov=True)
    with pytest.raises(ValueError, match="invalid momentum -1.0"):
        nn.optim.RMSprop(params, momentum=-1)
    with pytest.raises(ValueError, match="empty parameter list"):
        nn.optim.Adagrad([])
    with pytest.raises(ValueError, match="appear more than once"):
        nn.optim.SGD([params[0], params[1], params[0]])
    with pytest.raises(KeyError, match=r"unknown hyperparameters \['learning_rate'\]"):
        nn.optim.SGD([{"params": params, "learning_rate": 0.1}])
    with pytest.raises(TypeError, match="single Variable"):
        nn.optim.SGD(params[0])
    with pytest.raises(TypeError, match="floating-point Variables, got ndarray"):
        nn.optim.SGD([np.zeros(3)])


# ------------------------------------------------------------------------- state dicts
def assert_same_tree(a, b):
    assert type(a) is type(b) or isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same_tree(a[key], b[key])
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2)),
                                          ("Adagrad", dict(initial_accumulator_value=0.1)),
                                          ("RMSprop", dict(momentum=0.5, centered=True)),
                                          ("Adam", dict(betas=(0.5, 0.8), amsgrad=True))])
def test_state_dict_round_trip_through_a_checkpoint(name, options, tmp_path):
    params = [nn.Parameter(p) for p in initial_parameters()]
    optimizer = getattr(nn.optim, name)(params, **options)
    train(optimizer, params, 2)
    nn.save({"params": {str(i): p.data for i, p in enumerate(params)}, "optimizer": optimizer.state_dict()},
            tmp_path / "checkpoint.npz")
    train(optimizer, params, 3)  # the original goes on

    saved = nn.load(tmp_path / "checkpoint.npz")
    resumed = [nn.Parameter(saved["params"][str(i)]) for i in range(len(params))]
    other = getattr(nn.optim, name)(resumed, lr=0.123)  # the lr is restored from the state dict
    other.load_state_dict(saved["optimizer"])
    assert other.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    train(other, resumed, 3)
    for p, q in zip(params, resumed, strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    assert_same_tree(other.state_dict(), optimizer.state_dict())


def test_state_dict_holds_copies():
    params = [nn.Parameter(p) for p in initial_parameters()]
    optimizer = nn.optim.Adam(params)
    train(optimizer, params, 1)
    state = optimizer.state_dict()
    assert set(state["state"]) == {"0", "1", "2", "3"}  # not the spare parameter, which had no gradient
    assert state["state"]["0"]["step"] == 1
    np.testing.assert_array_equal(state["param_groups"]["0"]["params"], [0, 1, 2, 3, 4])
    state["state"]["0"]["exp_avg"][:] = 99
    assert not (optimizer.state[params[0]]["exp_avg"] == 99).any()


def corrupt(state_dict, change):
    """A deep copy of ``state_dict`` with ``change`` applied to it."""
    copy = {k: corrupt(v, None) if isinstance(v, dict) else v for k, v in state_dict.items()}
    if change is not None:
        change(copy)
    return copy


@pytest.mark.parametrize("change,error,message", [
    (lambda s: s["state"]["0"].update(exp_avg=np.zeros((3, 4))), ValueError, r"exp_avg of parameter 0 has "
                                                                              r"shape \(3, 4\)"),
    (lambda s: s["state"]["1"].pop("exp_avg_sq"), KeyError, r"state of parameter 1 has entries"),
    (lambda s: s["state"]["1"].update(exp_avg=np.zeros(4, np.int64)), TypeError, r"floating-point values"),
    (lambda s: s["state"]["1"].update(step=2.5), TypeError, r"step of parameter 1 must be an integer"),
    (lambda s: s["state"].update({"7": {}}), KeyError, r"parameter 7, which no group holds"),
    (lambda s: s["param_groups"]["0"].update(lr="fast"), TypeError, r"lr must be a float"),
    (lambda s: s["param_groups"]["0"].update(lr=-1.0), ValueError, r"invalid lr"),
    (lambda s: s["param_groups"]["0"].pop("eps"), KeyError, r"missing \['eps'\]"),
    (lambda s: s["param_groups"]["0"].update(params=np.arange(4)), ValueError, r"4 parameters saved"),
    (lambda s: s["param_groups"].update({"1": s["param_groups"]["0"]}), ValueError, r"2 parameter groups"),
    (lambda s: s.pop("state"), KeyError, r"'state' and 'param_groups'"),
])
def test_failed_load_changes_nothing(change, error, message):
    params = [nn.Parameter(p) for p in initial_parameters()]
    optimizer = nn.optim.Adam(params, lr=0.01)
    train(optimizer, params, 2)
    good = optimizer.state_dict()
    before = optimizer.state_dict()
    state_objects = dict(optimizer.state)
    with pytest.raises(error, match=message):
        optimizer.load_state_dict(corrupt(good, change))
    assert_same_tree(optimizer.state_dict(), before)
    assert all(optimizer.state[p] is s for p, s in state_objects.items())
    optimizer.load_state_dict(good)  # the intact one still loads
