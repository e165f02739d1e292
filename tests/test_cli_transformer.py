"""`tensorgrad train --model transformer` end to end, and the character Transformer itself."""

import os

import numpy as np
import pytest

import nn
import tensorgrad as tg
from nn.char_transformer import CharTransformer
from nn.cli import main

TINY = ["--model", "transformer", "--hidden", "16", "--heads", "2", "--batch", "4", "--seq-len", "12",
        "--lr", "0.01", "--quiet", "--sample-every", "1000", "--checkpoint-every", "5"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "it"]
    text = "\n".join(" ".join(rng.choice(words, size=8)) + "." for _ in range(150))
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def train(tmp_path, corpus, *extra, name="run"):
    out = str(tmp_path / name)
    return main(["train", "--text", corpus, "--out", out, *TINY, *extra]), out


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_transformer_learns(tmp_path, corpus, positions):
    code, out = train(tmp_path, corpus, "--steps", "60", "--positions", positions)
    assert code == 0
    saved = nn.load(os.path.join(out, "checkpoint.npz"))
    losses = saved["history"]["loss"]
    assert losses[-10:].mean() < losses[:5].mean() - 0.5
    assert str(saved["config"]["positions"]) == positions
    has_table = any(name.startswith("position.") for name in saved["model"])
    assert has_table == (positions == "learned")


def test_transformer_resumes_exactly(tmp_path, corpus):
    assert train(tmp_path, corpus, "--steps", "20", name="straight")[0] == 0
    assert train(tmp_path, corpus, "--steps", "10", name="split")[0] == 0
    assert main(["train", "--out", str(tmp_path / "split"), "--steps", "20", "--resume", "--quiet"]) == 0
    straight = nn.load(str(tmp_path / "straight" / "checkpoint.npz"))
    resumed = nn.load(str(tmp_path / "split" / "checkpoint.npz"))
    np.testing.assert_allclose(resumed["history"]["loss"], straight["history"]["loss"], rtol=1e-6)
    for name, value in straight["model"].items():
        np.testing.assert_allclose(resumed["model"][name], value, rtol=1e-5, atol=1e-6)


def test_transformer_samples_reproducibly(tmp_path, corpus, capsys):
    _, out = train(tmp_path, corpus, "--steps", "5")
    capsys.readouterr()
    samples = []
    for seed in ("1", "1", "2"):
        assert main(["sample", "--checkpoint", os.path.join(out, "checkpoint.npz"), "--length", "30",
                     "--seed", seed, "--prime", "the "]) == 0
        samples.append(capsys.readouterr().out)
    assert samples[0] == samples[1] != samples[2]
    assert samples[0].startswith("the ") and len(samples[0].rstrip("\n")) == 34


def test_heads_must_divide_hidden(tmp_path, corpus, capsys):
    code, _ = train(tmp_path, corpus, "--steps", "5", "--heads", "3")
    assert code == 2
    assert "--hidden 16 must be a multiple of --heads 3" in capsys.readouterr().err


def test_one_character_at_a_time_equals_the_whole_window():
    """The carried characters give sampling the context that one forward over the window has."""
    tg.manual_seed(0)
    model = CharTransformer(7, d_model=8, num_layers=2, nhead=2, context=6)
    ids = np.random.default_rng(0).integers(0, 7, size=(9, 2))
    whole, _ = model(ids[:6])
    state, steps = None, []
    for t in range(6):
        logits, state = model(ids[t:t + 1], state)
        steps.append(logits.data[0])
    np.testing.assert_allclose(np.stack(steps), whole.data, rtol=1e-5, atol=1e-6)
    # Past the context, the window slides: the logits at t = 8 see ids 3..8.
    for t in range(6, 9):
        logits, state = model(ids[t:t + 1], state)
    np.testing.assert_allclose(logits.data[0], model(ids[3:9])[0].data[-1], rtol=1e-5, atol=1e-6)
    # A full window ignores what is carried: no state crosses windows in training.
    np.testing.assert_array_equal(model(ids[3:9], state)[0].data, model(ids[3:9])[0].data)


def test_future_characters_do_not_change_the_past():
    tg.manual_seed(0)
    model = CharTransformer(5, d_model=8, nhead=2, context=8, positions="sinusoidal")
    ids = np.random.default_rng(1).integers(0, 5, size=(8, 1))
    changed = ids.copy()
    changed[5:] = (changed[5:] + 1) % 5
    np.testing.assert_allclose(model(ids)[0].data[:5], model(changed)[0].data[:5], rtol=1e-6)
    assert not np.allclose(model(ids)[0].data[5:], model(changed)[0].data[5:])
    # A longer input is read window by window: its 9th position sees the 7 before it.
    longer = np.concatenate([ids, [[2]]])
    logits, _ = model(longer)
    np.testing.assert_allclose(logits.data[:8], model(ids)[0].data, rtol=1e-6)
    np.testing.assert_allclose(logits.data[8], model(longer[1:])[0].data[-1], rtol=1e-5, atol=1e-6)
    with pytest.raises(tg.ShapeError, match=r"ids must be \(T, B\), got shape \(9,\)"):
        model(np.zeros(9, dtype=np.int64))
