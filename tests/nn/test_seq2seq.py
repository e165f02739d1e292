"""Bahdanau attention, the encoder–decoder with and without attention, greedy and beam-search
decoding, and the reverse_strings task."""

import itertools

import numpy as np
import pytest
from replays import assert_replays_as_eager, assert_trains_as_eager

import nn
import tensorgrad as tg
from nn.attention import BahdanauAttention
from nn.generate import beam_search, greedy_decode
from nn.seq2seq import DecoderState, Seq2Seq
from nn.tasks import BOS, EOS, PAD, reverse_strings


def test_bahdanau_attention_equations_and_gradients(rng):
    tg.manual_seed(0)
    attention = BahdanauAttention(3, 4, 5).double()
    s, h = rng.standard_normal((2, 3)), rng.standard_normal((6, 2, 4))
    padding = np.zeros((2, 6), dtype=bool)
    padding[1, 4:] = True
    context, weights = attention(s, h, key_padding_mask=padding)
    W, U, b, v = (attention.query_proj.weight.data, attention.key_proj.weight.data,
                  attention.key_proj.bias.data, attention.score.weight.data[0])
    for i in range(2):
        e = np.array([v @ np.tanh(W @ s[i] + U @ h[j, i] + b) for j in range(6)])
        e[padding[i]] = -np.inf
        alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        np.testing.assert_allclose(weights.data[i], alpha, rtol=1e-12)
        np.testing.assert_allclose(context.data[i], alpha @ h[:, i], rtol=1e-12)
    assert tg.gradcheck(lambda s, h: attention(s, h, key_padding_mask=padding), s, h)
    # The keys projected once give the same result as projecting them at every step.
    again, _ = attention(s, h, attention.project_keys(tg.Variable(h)), padding)
    np.testing.assert_allclose(again.data, context.data)


def test_bahdanau_attention_bad_input(rng):
    attention = BahdanauAttention(3, 4, 5)
    with pytest.raises(tg.ShapeError, match=r"got \(2, 3\) and \(6, 3, 4\)"):
        attention(np.zeros((2, 3), np.float32), np.zeros((6, 3, 4), np.float32))
    with pytest.raises(tg.ShapeError, match=r"boolean of shape \(B, S\) = \(2, 6\), got bool \(6, 2\)"):
        attention(np.zeros((2, 3), np.float32), np.zeros((6, 2, 4), np.float32),
                  key_padding_mask=np.zeros((6, 2), bool))
    with pytest.raises(ValueError, match="hides every position of sequence 1"):
        attention(np.zeros((2, 3), np.float32), np.zeros((6, 2, 4), np.float32),
                  key_padding_mask=np.array([[False] * 6, [True] * 6]))


def test_bahdanau_attention_under_jit_reads_each_calls_padding_mask():
    attention = BahdanauAttention(3, 4, 5).double()
    rng = np.random.default_rng(0)
    query, keys = rng.standard_normal((2, 3)), tg.Variable(rng.standard_normal((6, 2, 4)))
    lengths = ([6, 6], [4, 2], [1, 6])
    masks = [np.arange(6) >= np.array(length)[:, None] for length in lengths]
    jitted = assert_replays_as_eager(lambda q, k, m: attention(q, k, key_padding_mask=m),
                                     [(query, keys, m) for m in masks + masks], list(attention.parameters()))
    hidden = np.array([[False] * 6, [True] * 6])
    for _ in range(2):  # checked at every replay, as in eager mode
        with pytest.raises(ValueError, match="hides every position of sequence 1"):
            jitted(query, keys, hidden)


def test_reverse_strings():
    source, lengths, decoder_inputs, targets = reverse_strings(0, 50, 2, 7, num_symbols=5)
    assert source.shape == (lengths.max(), 50)
    assert decoder_inputs.shape == targets.shape == (lengths.max() + 1, 50)
    assert lengths.min() >= 2 and lengths.max() <= 7 and len(set(lengths)) > 3
    for b, n in enumerate(lengths):
        string = source[:n, b]
        assert ((string >= 3) & (string < 8)).all() and (source[n:, b] == PAD).all()
        np.testing.assert_array_equal(targets[:n + 1, b], list(string[::-1]) + [EOS])
        np.testing.assert_array_equal(decoder_inputs[:n + 1, b], [BOS] + list(string[::-1]))
        assert (targets[n + 1:, b] == PAD).all()
    np.testing.assert_array_equal(reverse_strings(3, 4, 1, 5)[0], reverse_strings(3, 4, 1, 5)[0])
    with pytest.raises(ValueError, match="max_length=2 is below min_length=3"):
        reverse_strings(0, 4, 3, 2)


@pytest.mark.parametrize("attention", [False, True])
def test_seq2seq_decoder_step_gradients_and_padding(attention):
    tg.manual_seed(0)
    model = Seq2Seq(8, embedding_dim=3, hidden_size=4, attention=attention).double()
    source, lengths, decoder_inputs, targets = reverse_strings(1, 3, 1, 4, num_symbols=5)

    state = model.encode(source, lengths)

    def step(h, c, memory):  # one decoder step, as a function of its state and the encoder outputs
        keys = model.attention.project_keys(memory) if attention else None
        previous = decoder_inputs[1]
        logits, new_state, _ = model.decode_step(previous, DecoderState(h, c, memory, keys, state.padding))
        return logits, new_state.h, new_state.c

    assert tg.gradcheck(step, state.h.data, state.c.data, state.memory.data)
    logits, weights = model(source, lengths, decoder_inputs)
    assert logits.shape == (len(decoder_inputs), 3, 8)
    if attention:
        assert weights.shape == (len(decoder_inputs), 3, len(source))
        np.testing.assert_allclose(weights.data.sum(-1), 1)
        for b, n in enumerate(lengths):
            assert (weights.data[:, b, n:] == 0).all()  # no weight on padding
    else:
        assert weights is None
    # The padding after a source's end changes nothing.
    changed = source.copy()
    changed[lengths[0]:, 0] = 5
    np.testing.assert_allclose(model(changed, lengths, decoder_inputs)[0].data, logits.data)


@pytest.mark.parametrize("attention", [False, True])
def test_seq2seq_learns_to_reverse(attention):
    tg.manual_seed(0)
    model = Seq2Seq(8, embedding_dim=8, hidden_size=32, attention=attention)
    optimizer = nn.optim.Adam(model.parameters(), lr=0.02)
    rng = np.random.default_rng(0)
    for _ in range(150):
        source, lengths, decoder_inputs, targets = reverse_strings(rng, 32, 1, 4, num_symbols=5)
        logits, _ = model(source, lengths, decoder_inputs)
        loss = nn.softmax_cross_entropy(logits.reshape(-1, 8), targets.reshape(-1), ignore_index=PAD)
        model.zero_grad()
        loss.backward()
        optimizer.step()
    source, lengths, _, targets = reverse_strings(1, 50, 1, 4, num_symbols=5)
    decoded = greedy_decode(model, source, lengths, bos=BOS, eos=EOS, max_length=6)
    correct = [out == list(source[:n, b][::-1]) for b, (out, n) in enumerate(zip(decoded, lengths))]
    assert np.mean(correct) > 0.8
    beams, _ = beam_search(model, source, lengths, bos=BOS, eos=EOS, max_length=6, beam_size=3)
    assert np.mean([out == list(source[:n, b][::-1]) for b, (out, n) in enumerate(zip(beams, lengths))]) > 0.8
    assert beam_search(model, source, lengths, bos=BOS, eos=EOS, max_length=6, beam_size=1)[0] == decoded


def batches_of_one_shape(count, rng):
    """``count`` reverse_strings batches with the same lengths and shapes and other symbols."""
    source, lengths, decoder_inputs, targets = reverse_strings(0, 3, 2, 4, num_symbols=5)
    relabels = [np.r_[:3, 3 + rng.permutation(5)] for _ in range(count)]  # PAD, BOS, EOS kept
    return tuple(lengths.tolist()), [(r[source], r[decoder_inputs], r[targets]) for r in relabels]


@pytest.mark.parametrize("attention", [False, True])
def test_a_jitted_training_step_embeds_each_batchs_ids(attention):
    lengths, batches = batches_of_one_shape(5, np.random.default_rng(1))
    assert lengths != (lengths[0],) * 3  # padding in the source and the targets

    def build():
        tg.manual_seed(0)
        model = Seq2Seq(8, embedding_dim=3, hidden_size=4, attention=attention)

        def loss(source, decoder_inputs, targets):
            logits, _ = model(source, lengths, decoder_inputs)
            return nn.softmax_cross_entropy(logits.reshape(-1, 8), targets.reshape(-1), ignore_index=PAD)

        return loss, list(model.parameters())

    loss, parameters = build()
    assert_replays_as_eager(loss, batches, parameters)
    assert_trains_as_eager(build, batches, lr=0.02)


@pytest.mark.parametrize("decode", [greedy_decode, beam_search])
def test_decoding_under_jit_warns_that_it_feeds_back_the_traced_tokens(decode):
    tg.manual_seed(0)
    model = Seq2Seq(8, embedding_dim=3, hidden_size=4)
    lengths, [(source, _, _)] = batches_of_one_shape(1, np.random.default_rng(0))
    decoded = tg.jit(lambda source: decode(model, source, lengths, bos=BOS, eos=EOS, max_length=4))
    with pytest.warns(tg.TraceWarning, match=f"{decode.__name__} \\(the tokens it feeds back\\)"), \
            pytest.raises(tg.TraceError, match="returned a"):  # a list of token ids: no Variable to replay
        decoded(source)


class MarkovDecoder:
    """A decoder whose next-token distribution depends only on the previous token: log p = table[prev].

    Its exact best output can be found by enumerating every sequence, to check the search."""

    def __init__(self, table):
        self.table = np.log(table)

    def encode(self, source, lengths):
        n = len(lengths)
        return DecoderState(tg.Variable(np.zeros((n, 1))), tg.Variable(np.zeros((n, 1))),
                            tg.Variable(np.zeros((1, n, 1))), None, np.zeros((n, 1), bool))

    def decode_step(self, previous, state):
        return tg.Variable(self.table[previous]), state, None

    def exact_best(self, max_length, alpha, bos=0, eos=1):
        best = (-np.inf, None)
        V = len(self.table)
        for n in range(max_length):
            for body in itertools.product([t for t in range(V) if t not in (bos, eos)], repeat=n):
                path = [bos, *body, eos]
                log_p = sum(self.table[a, b] for a, b in zip(path, path[1:]))
                best = max(best, (log_p / (n + 1) ** alpha, list(body)), key=lambda item: item[0])
        return best


def test_beam_search_finds_what_greedy_misses():
    # From BOS, token 2 is likelier than 3, but everything after 2 is uncertain, while 3 is
    # surely followed by EOS: greedy takes 2, a beam of two finds 3, EOS.
    table = np.array([[0.0, 0.0, 0.55, 0.45],   # after BOS (0)
                      [0.0, 1.0, 0.0, 0.0],     # after EOS (1)
                      [0.0, 0.34, 0.33, 0.33],  # after 2
                      [0.0, 0.98, 0.01, 0.01]]) + 1e-12
    model = MarkovDecoder(table)
    kwargs = dict(bos=0, eos=1, max_length=3)
    assert greedy_decode(model, np.zeros((1, 1)), np.ones(1, int), **kwargs) == [[2]]
    beams, scores = beam_search(model, np.zeros((1, 1)), np.ones(1, int), beam_size=2, length_penalty=0.0,
                                **kwargs)
    assert beams == [[3]]
    np.testing.assert_allclose(scores[0], np.log(0.45 * 0.98))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_is_exact_search(alpha):
    table = np.random.default_rng(0).dirichlet(np.ones(4), size=4)
    model = MarkovDecoder(table)
    score, best = model.exact_best(4, alpha)
    beams, scores = beam_search(model, np.zeros((1, 1)), np.ones(1, int), bos=0, eos=1, max_length=4,
                                beam_size=64, length_penalty=alpha)
    assert beams == [best]
    np.testing.assert_allclose(scores[0], score)


def test_beam_search_bad_beam_size():
    with pytest.raises(ValueError, match="beam_size must be an integer >= 1, got 0"):
        beam_search(None, np.zeros((1, 1)), np.ones(1, int), bos=0, eos=1, max_length=2, beam_size=0)
