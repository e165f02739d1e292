"""Batches of sequences of different lengths, as PyTorch's ``torch.nn.utils.rnn``.

A padded batch stores B sequences in one array (T, B, *) (or (B, T, *) batch first),
filled past each sequence's end. A :class:`PackedSequence` stores only the valid steps:
with the sequences sorted by decreasing length, ``data`` holds step 0 of every sequence,
then step 1 of those at least 2 long, and so on, and ``batch_sizes[t]`` says how many
sequences step t has. ``sorted_indices[s]`` is the batch position of the s-th longest
sequence, ``unsorted_indices`` the inverse permutation (both None when the batch came
sorted). The recurrent layers take either form: a padded batch with ``lengths=``, or a
PackedSequence, for which they return one.

Every function here is made of differentiable gathers and concatenations, so gradients
flow through packing and unpacking.
"""

from typing import NamedTuple

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from tensorgrad.variable import data_of


class PackedSequence(NamedTuple):
    """The valid steps of a batch of sequences, time-major, longest sequences first (see the
    module docstring). Build it with :func:`pack_padded_sequence`.

    Under ``tg.jit`` only ``data`` is an array of the plan: the batch sizes and indices
    decide which steps a layer runs and which rows it gathers, so they are part of the
    signature by value (new ones trace again) and a result's are returned as traced."""

    data: tg.Variable
    batch_sizes: np.ndarray
    sorted_indices: np.ndarray | None = None
    unsorted_indices: np.ndarray | None = None

    jit_static = ("batch_sizes", "sorted_indices", "unsorted_indices")  # tg.jit: structure, not data


def pad_sequence(sequences, batch_first=False, padding_value=0.0):
    """Stack sequences of shapes (Lᵢ, *) into (T, B, *), T = max Lᵢ (or (B, T, *)), filled
    with ``padding_value`` past each one's end."""
    sequences = [tg.as_variable(s) for s in sequences]
    if not sequences:
        raise ValueError("pad_sequence: needs at least one sequence")
    rest = {s.shape[1:] for s in sequences if s.ndim}
    if len(rest) != 1 or any(s.ndim == 0 for s in sequences):
        raise ValueError(f"pad_sequence: sequences must share their shape after the first axis, got "
                         f"{[s.shape for s in sequences]}")
    steps = max(len(s) for s in sequences)
    padded = []
    for s in sequences:
        if len(s) < steps:
            fill = np.full((steps - len(s),) + s.shape[1:], padding_value, dtype=s.dtype)
            s = F.concat([s, fill])
        padded.append(s)
    return F.stack(padded, axis=0 if batch_first else 1)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):  # noqa: A002 - PyTorch's name
    """The :class:`PackedSequence` of the padded batch ``input`` (T, B, *) (or (B, T, *))
    whose sequences have ``lengths`` (one int in 1..T each).

    With ``enforce_sorted`` the lengths must be in decreasing order (``sorted_indices`` is
    then None); ``enforce_sorted=False`` sorts them, as PyTorch does.
    """
    x = tg.as_variable(input)
    if x.ndim < 2:
        raise ValueError(f"pack_padded_sequence: input of shape {x.shape} has no (time, batch) axes")
    if batch_first:
        x = x.transpose((1, 0) + tuple(range(2, x.ndim)))
    steps, batch = x.shape[:2]
    lengths = check_lengths("pack_padded_sequence", lengths, steps, batch)
    if enforce_sorted:
        if (np.diff(lengths) > 0).any():
            raise ValueError(f"pack_padded_sequence: lengths {lengths.tolist()} are not in decreasing order, "
                             "as enforce_sorted=True requires; pass enforce_sorted=False to have them sorted")
        sorted_indices = None
        order = np.arange(batch)
    else:
        order = sorted_indices = np.argsort(-lengths, kind="stable")
    batch_sizes = (lengths[order][None, :] > np.arange(lengths.max())[:, None]).sum(axis=1)
    return _pack(x, batch_sizes, sorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The padded batch (T, B, *) (or (B, T, *)) of a :class:`PackedSequence` in its original
    batch order, and the lengths (an int64 array). T is the longest length, or
    ``total_length`` (at least that)."""
    data, batch_sizes, _, unsorted = check_packed(sequence, "pad_packed_sequence")
    steps = len(batch_sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"pad_packed_sequence: total_length={total_length} is shorter than the "
                             f"longest sequence, of length {steps}")
        steps = int(total_length)
    batch = int(batch_sizes[0])
    position = np.arange(batch) if unsorted is None else unsorted  # sorted position of each sequence
    sorted_lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(batch_sizes)])
    t = np.arange(steps)[:, None]
    running = t < sorted_lengths[position][None, :]
    # Each (t, b) reads its row of data, or the one padding row appended after them.
    index = np.where(running, offsets[np.minimum(t, len(batch_sizes) - 1)] + position[None, :], len(data))
    fill = np.full((1,) + data.shape[1:], padding_value, dtype=data.dtype)
    padded = F.concat([data, fill])[index.reshape(-1)].reshape((steps, batch) + data.shape[1:])
    if batch_first:
        padded = padded.transpose((1, 0) + tuple(range(2, padded.ndim)))
    return padded, sorted_lengths[position].astype(np.int64)


def check_packed(sequence, owner):
    """The fields of a PackedSequence, checked to describe one: (data, batch_sizes, sorted, unsorted)."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{owner}: expected a PackedSequence, got {type(sequence).__name__}")
    data = tg.as_variable(sequence.data)
    sizes = np.asarray(sequence.batch_sizes)
    if sizes.ndim != 1 or not len(sizes) or sizes.dtype.kind not in "iu":
        raise ValueError(f"{owner}: batch_sizes must be a non-empty 1-d integer array, got "
                         f"{sizes.tolist()} of dtype {sizes.dtype}")
    if sizes.min() < 1 or (np.diff(sizes) > 0).any():
        raise ValueError(f"{owner}: batch_sizes {sizes.tolist()} must be positive and non-increasing "
                         "(the number of sequences still running at each step)")
    if data.ndim < 1 or len(data) != sizes.sum():
        raise ValueError(f"{owner}: batch_sizes {sizes.tolist()} add up to {sizes.sum()} steps, but the "
                         f"data has shape {data.shape}")
    sorted_indices, unsorted = sequence.sorted_indices, sequence.unsorted_indices
    if sorted_indices is not None:
        sorted_indices = np.asarray(sorted_indices)
        if sorted(sorted_indices.tolist()) != list(range(sizes[0])):
            raise ValueError(f"{owner}: sorted_indices {sorted_indices.tolist()} are not a permutation "
                             f"of the {sizes[0]} sequences")
        unsorted = np.argsort(sorted_indices) if unsorted is None else np.asarray(unsorted)
        if not np.array_equal(sorted_indices[unsorted], np.arange(sizes[0])):
            raise ValueError(f"{owner}: unsorted_indices {unsorted.tolist()} do not invert sorted_indices "
                             f"{sorted_indices.tolist()}")
    return data, sizes, sorted_indices, unsorted


def run_packed(layer, sequence, hx):
    """``layer.forward(sequence, hx)`` for a PackedSequence: the layer runs on the padded batch
    with its lengths (``forward`` again, so its hooks run once), and its output is packed
    again in the same order."""
    _, batch_sizes, sorted_indices, _ = check_packed(sequence, type(layer).__name__)
    padded, lengths = pad_packed_sequence(sequence, batch_first=layer.batch_first)
    output, h_n = layer.forward(padded, hx, lengths=lengths)
    if layer.batch_first:
        output = output.transpose((1, 0) + tuple(range(2, output.ndim)))
    return _pack(output, batch_sizes, sorted_indices), h_n


def _pack(x, batch_sizes, sorted_indices):
    """Pack the time-major padded ``x`` (T, B, *) given the sorted batch sizes and order."""
    steps, batch = x.shape[:2]
    order = np.arange(batch) if sorted_indices is None else sorted_indices
    rows = np.concatenate([t * batch + order[:size] for t, size in enumerate(batch_sizes)])
    data = x.reshape((steps * batch,) + x.shape[2:])[rows]
    unsorted = None if sorted_indices is None else np.argsort(sorted_indices)
    return PackedSequence(data, np.asarray(batch_sizes, dtype=np.int64), sorted_indices, unsorted)


def valid_steps(owner, lengths, steps, batch):
    """None (all sequences run the T = ``steps`` steps), or the mask (T, B, 1) of the steps
    inside each sequence of a padded batch with these ``lengths``."""
    if lengths is None:
        return None
    lengths = check_lengths(owner, lengths, steps, batch)
    if (lengths == steps).all():
        return None
    return (np.arange(steps)[:, None] < lengths)[:, :, None]


def check_lengths(owner, lengths, steps, batch):
    """``lengths`` as an int64 array, checked: one int in 1..steps per sequence of the batch."""
    lengths = data_of(lengths)
    if lengths.ndim != 1 or (lengths.size and lengths.dtype.kind not in "iu"):
        raise TypeError(f"{owner}: lengths must be a 1-d sequence of integers, got shape {lengths.shape} "
                        f"and dtype {lengths.dtype}")
    if len(lengths) != batch:
        raise ValueError(f"{owner}: {len(lengths)} lengths for a batch of {batch} sequences")
    if lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(f"{owner}: lengths must lie in 1..{steps} (the padded sequence length), got "
                         f"{lengths.tolist()}")
    return lengths.astype(np.int64)
