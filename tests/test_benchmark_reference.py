"""The hand-written NumPy BPTT of benchmarks/numpy_bptt.py computes what tensorgrad computes.

benchmarks/train_step.py measures tensorgrad against that hand-written version; these tests
make sure the two do the same work: the loss, every parameter's gradient and a whole
training step (clipping included) agree to 1e-10 in float64, for RNN, LSTM and GRU.
"""

import os
import sys

import numpy as np
import pytest

import tensorgrad as tg
from nn.charlm import CharRNN
from nn.clip import clip_grad_norm
from nn.losses import softmax_cross_entropy
from nn.optim import Adam

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
from numpy_bptt import CharLM  # noqa: E402

VOCAB, HIDDEN, STEPS, BATCH = 7, 5, 6, 3
TOLERANCE = dict(rtol=1e-10, atol=1e-10)


def setup(mode, seed=0):
    """A float64 tensorgrad CharRNN, the hand-written model on its weights, and a batch."""
    tg.manual_seed(seed)
    model = CharRNN(VOCAB, HIDDEN, 1, mode).double()
    reference = CharLM(model.state_dict(), mode, lr=0.01)
    ids = np.random.default_rng(seed).integers(0, VOCAB, (STEPS + 1, BATCH))
    return model, reference, ids[:-1], ids[1:]


def tensorgrad_loss(model, ids, targets):
    logits, _ = model(ids)
    return softmax_cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_hand_written_gradients_equal_tensorgrads(mode):
    model, reference, ids, targets = setup(mode)
    loss = tensorgrad_loss(model, ids, targets)
    loss.backward()
    expected_loss, grads = reference.loss_and_grads(ids, targets)
    np.testing.assert_allclose(loss.item(), expected_loss, **TOLERANCE)
    assert set(grads) == {name for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.data, grads[name], **TOLERANCE, err_msg=name)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("max_norm", [0.05, 100.0], ids=["clipped", "not clipped"])
def test_hand_written_training_steps_equal_tensorgrads(mode, max_norm):
    model, reference, ids, targets = setup(mode)
    optimizer = Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        loss = tensorgrad_loss(model, ids, targets)
        model.zero_grad()
        loss.backward()
        norm = clip_grad_norm(model.parameters(), max_norm)
        optimizer.step()
        expected_loss = reference.step(ids, targets, max_norm)
        np.testing.assert_allclose(loss.item(), expected_loss, **TOLERANCE)
    assert (norm > max_norm) == (max_norm < 1)  # the clipped case did clip
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.data, reference.params[name], **TOLERANCE, err_msg=name)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_hand_written_forward_equals_tensorgrads_and_carries_the_state(mode):
    model, reference, ids, _ = setup(mode)
    with tg.no_grad():
        logits, state = model(ids[:3])
        more, _ = model(ids[3:], state)
    expected, reference_state = reference.forward(ids[:3])
    expected_more, _ = reference.forward(ids[3:], reference_state)
    np.testing.assert_allclose(logits.data, expected, **TOLERANCE)
    np.testing.assert_allclose(more.data, expected_more, **TOLERANCE)
