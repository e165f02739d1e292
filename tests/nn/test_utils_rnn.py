"""nn.utils.rnn: pad_sequence, pack_padded_sequence, pad_packed_sequence and PackedSequence,
against PyTorch's (values, batch sizes, permutations, gradients), and their bad input."""

import numpy as np
import pytest

import tensorgrad as tg
from nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence, pad_sequence

LENGTHS = [3, 5, 1, 4]


def sequences(rng, lengths=LENGTHS, features=(2,)):
    return [rng.standard_normal((n,) + features) for n in lengths]


@pytest.mark.parametrize("batch_first", [False, True])
def test_pad_sequence_matches_pytorch_and_passes_gradients(torch, rng, batch_first):
    seqs = sequences(rng)
    ours = pad_sequence([tg.Variable(s) for s in seqs], batch_first=batch_first, padding_value=-1.5)
    theirs = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=batch_first,
                                             padding_value=-1.5)
    np.testing.assert_array_equal(ours.data, theirs.numpy())
    tg.gradcheck(lambda *xs: pad_sequence(xs, batch_first=batch_first), *seqs)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths, enforce_sorted",
                         [([5, 4, 3, 1], True), (LENGTHS, False), ([2, 2, 2, 2], True)])
def test_pack_and_pad_match_pytorch(torch, rng, lengths, enforce_sorted, batch_first):
    padded = pad_sequence(sequences(rng, lengths), batch_first=batch_first).data
    ours = pack_padded_sequence(padded, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    theirs = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(padded), torch.tensor(lengths),
                                                     batch_first=batch_first, enforce_sorted=enforce_sorted)
    assert isinstance(ours, PackedSequence)
    np.testing.assert_array_equal(ours.data.data, theirs.data.numpy())
    np.testing.assert_array_equal(ours.batch_sizes, theirs.batch_sizes.numpy())
    for field in ("sorted_indices", "unsorted_indices"):
        mine, ref = getattr(ours, field), getattr(theirs, field)
        assert (mine is None) == (ref is None)
        if ref is not None:
            np.testing.assert_array_equal(mine, ref.numpy())
    for total_length in (None, 7):
        back, back_lengths = pad_packed_sequence(ours, batch_first=batch_first, padding_value=9.0,
                                                 total_length=total_length)
        ref, ref_lengths = torch.nn.utils.rnn.pad_packed_sequence(
            theirs, batch_first=batch_first, padding_value=9.0, total_length=total_length)
        np.testing.assert_array_equal(back.data, ref.numpy())
        np.testing.assert_array_equal(back_lengths, ref_lengths.numpy())
        assert back_lengths.dtype == np.int64


def test_gradients_flow_through_packing_and_unpacking(rng):
    padded = pad_sequence(sequences(rng)).data

    def round_trip(x):
        packed = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
        return pad_packed_sequence(PackedSequence(packed.data * packed.data, *packed[1:]), total_length=6)[0]

    tg.gradcheck(round_trip, padded)
    x = tg.Variable(padded)
    round_trip(x).sum().backward()
    valid = np.arange(5)[:, None] < np.array(LENGTHS)[None, :]
    np.testing.assert_array_equal(x.grad.data != 0, np.broadcast_to(valid[:, :, None], x.shape))


def test_bad_input_is_a_clear_error(rng):
    padded = pad_sequence(sequences(rng)).data
    with pytest.raises(ValueError, match=r"lengths \[3, 5, 1, 4\] are not in decreasing order, as "
                                         r"enforce_sorted=True requires"):
        pack_padded_sequence(padded, LENGTHS)
    with pytest.raises(ValueError, match=r"3 lengths for a batch of 4"):
        pack_padded_sequence(padded, [3, 2, 1], enforce_sorted=False)
    with pytest.raises(ValueError, match=r"lengths must lie in 1\.\.5"):
        pack_padded_sequence(padded, [6, 2, 1, 1])
    packed = pack_padded_sequence(padded, LENGTHS, enforce_sorted=False)
    for sizes, message in [([4, 3, 3, 2], "add up to 12 steps, but the data has shape \\(13, 2\\)"),
                           ([3, 4, 3, 2, 1], "must be positive and non-increasing"),
                           ([4, 3, 3, 2, 1, 0], "must be positive and non-increasing")]:
        with pytest.raises(ValueError, match=message):
            pad_packed_sequence(PackedSequence(packed.data, np.array(sizes), *packed[2:]))
    with pytest.raises(ValueError, match="are not a permutation of the 4 sequences"):
        pad_packed_sequence(PackedSequence(packed.data, packed.batch_sizes, np.array([0, 1, 1, 3])))
    with pytest.raises(ValueError, match="total_length=4 is shorter than the longest sequence, of length 5"):
        pad_packed_sequence(packed, total_length=4)
    with pytest.raises(ValueError, match="share their shape after the first axis"):
        pad_sequence([np.zeros((2, 3)), np.zeros((2, 4))])
