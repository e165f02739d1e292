"""Checks shared by test modules: a function under ``tg.jit`` replays its eager run bit for bit,
and a model trained with its jitted loss follows the eager training bit for bit."""

import numpy as np

import nn
import tensorgrad as tg


def assert_replays_as_eager(fn, calls, parameters=()):
    """Call ``tg.jit(fn)`` and ``fn`` on each argument tuple of ``calls`` (the first call traces,
    the others replay) and check that they give the same outputs and gradients, bit for bit.

    The loss is Σ w ⊙ y over the outputs y (a Variable or a tuple of them, None skipped), w
    fixed random; the gradients are those of the Variable arguments that require one (copied
    for each run) and of ``parameters``. Each run starts from ``tg.manual_seed(call index)``, so
    dropout draws the same masks. Returns the jitted function.
    """
    jitted = tg.jit(fn)
    for k, args in enumerate(calls):
        runs = []
        for f in (jitted, jitted.eager):
            args_k = [tg.Variable(a.data.copy(), requires_grad=True)
                      if isinstance(a, tg.Variable) and a.requires_grad else a for a in args]
            for p in parameters:
                p.cleargrad()
            tg.manual_seed(k)
            outputs = f(*args_k)
            outputs = [y for y in (outputs if isinstance(outputs, tuple) else (outputs,)) if y is not None]
            sum((y * np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)).sum()
                for y in outputs).backward()
            grads = [a.grad for a in args_k if isinstance(a, tg.Variable) and a.requires_grad]
            grads += [p.grad for p in parameters]
            runs.append([y.data.copy() for y in outputs] + [g.data.copy() for g in grads])
        for a, b in zip(*runs, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    assert jitted.traces == 1
    return jitted


def assert_trains_as_eager(build, batches, lr=0.01):
    """Train twice with Adam, one step per argument tuple of ``batches``: with ``tg.jit`` of
    the loss (which traces once) and with the loss itself; check that the losses and the
    parameters after the last step are equal bit for bit. ``build()`` makes the model anew,
    from its seed, and returns (its loss function, its parameters)."""
    runs = []
    for jit in (True, False):
        loss, parameters = build()
        step = tg.jit(loss) if jit else loss
        optimizer = nn.optim.Adam(parameters, lr=lr)
        losses = []
        for batch in batches:
            value = step(*batch)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            losses.append(value.item())
        assert not jit or step.traces == 1
        runs.append((losses, [p.data for p in parameters]))
    (jit_losses, jit_parameters), (eager_losses, eager_parameters) = runs
    assert jit_losses == eager_losses
    for a, b in zip(jit_parameters, eager_parameters, strict=True):
        np.testing.assert_array_equal(a, b)
