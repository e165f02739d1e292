"""Flat dicts of arrays in the safetensors format: the weights file PyTorch programs load.

A safetensors file is an 8-byte little-endian header length, a JSON header giving each
array's dtype, shape and byte range (and a ``__metadata__`` dict of strings), then the
arrays' bytes: no code, nothing to unpickle. ``safetensors.torch.load_file(path)`` reads
it into a dict that ``torch_model.load_state_dict`` takes, since tensorgrad's parameter
names are PyTorch's.

The format keeps no checksums and stores arrays in its own order, so the files written
here carry one more metadata entry, ``tensorgrad.crc32``: the arrays' names in the order
they were given, each with the CRC-32 of its bytes. Loading restores that order and fails
on a damaged array; files from elsewhere (PyTorch's) load without the check. A program
that writes other weights with the metadata of such a file must leave that entry out.

Needs the ``safetensors`` package (the ``safetensors`` extra).
"""

import json
import os
import struct
import zlib

import numpy as np

from nn.atomic import open_to_read, write_atomically
from tensorgrad import Variable

SUFFIX = ".safetensors"
_CHECKSUMS = "tensorgrad.crc32"
_KINDS = "biuf"  # the dtypes both the format and NumPy have: bool, integers, floats


def is_safetensors_path(path):
    return os.fspath(path).endswith(SUFFIX)


def save_file(arrays, path, metadata=None):
    """Write the flat dict ``arrays`` {name: ndarray} to ``path`` atomically.

    ``metadata`` ({str: str}, optional) goes into the header, e.g. a configuration as
    JSON; PyTorch ignores it, :func:`read_metadata` gives it back. The format's bytes are
    little-endian: a big-endian array is stored, and loads back, as its little-endian twin.
    """
    backend = _backend()
    if not isinstance(arrays, dict):
        raise TypeError(f"nn.save: a {SUFFIX} file holds a dict of arrays, got {type(arrays).__name__}")
    checked = {}
    for name, value in arrays.items():
        value = value.data if isinstance(value, Variable) else value
        if not isinstance(name, str) or not name:
            raise ValueError(f"nn.save: key {name!r} is not allowed in a {SUFFIX} file (non-empty strings)")
        if isinstance(value, dict):
            raise TypeError(f"nn.save: {name!r} is a dict; a {SUFFIX} file holds a flat dict of arrays "
                            "such as model.state_dict() (use an .npz path for nested checkpoints)")
        if not isinstance(value, np.ndarray | np.generic) or np.asarray(value).dtype.kind not in _KINDS:
            raise TypeError(f"nn.save: {name!r} is a {type(value).__name__}"
                            + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else "")
                            + f"; a {SUFFIX} file holds boolean, integer and floating-point arrays")
        array = np.asarray(value, order="C")  # contiguous bytes, 0-d arrays kept 0-d
        # the checksum is taken over the bytes the file gets
        checked[name] = array.astype(array.dtype.newbyteorder("<"), copy=False)
    metadata = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError(f"nn.save: {SUFFIX} metadata maps strings to strings, got {metadata!r}")
    metadata[_CHECKSUMS] = json.dumps({name: _crc32(array) for name, array in checked.items()})
    data = backend.save(checked, metadata=metadata)
    write_atomically(path, lambda file: file.write(data))


def load_file(path):
    """The dict of arrays in the safetensors file at ``path``, in the order they were saved.

    A missing file is a FileNotFoundError, a directory an IsADirectoryError; a truncated or
    damaged file, or one of another format, a ValueError naming it.
    """
    backend = _backend()
    path = os.fspath(path)
    data = _read(path)
    try:
        arrays = backend.load(data)
    except Exception as error:  # the Rust reader's SafetensorError, or NumPy's on an odd dtype
        raise ValueError(f"nn.load: {path!r} is not a readable {SUFFIX} file (truncated or of "
                         f"another format): {error}") from None
    checksums = json.loads(_header(data).get("__metadata__", {}).get(_CHECKSUMS, "{}"))
    if checksums:
        if sorted(checksums) != sorted(arrays):
            raise ValueError(f"nn.load: {path!r} is damaged: its arrays {sorted(arrays)} are not the "
                             f"ones it lists {sorted(checksums)}")
        for name, crc in checksums.items():
            if _crc32(arrays[name]) != crc:
                raise ValueError(f"nn.load: {path!r} is damaged: array {name!r} fails its checksum")
        arrays = {name: arrays[name] for name in checksums}
    return arrays


def read_metadata(path):
    """The metadata {str: str} stored in the header of the safetensors file at ``path``."""
    path = os.fspath(path)
    data = _read(path)
    try:
        metadata = _header(data).get("__metadata__", {})
    except ValueError as error:
        raise ValueError(f"nn.load: {path!r} is not a readable {SUFFIX} file: {error}") from None
    metadata.pop(_CHECKSUMS, None)
    return metadata


def _read(path):
    with open_to_read(path) as file:
        return file.read()


def _header(data):
    """The JSON header of the file ``data``: {name: {dtype, shape, data_offsets}, __metadata__}."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes are too few for a header")
    (size,) = struct.unpack("<Q", data[:8])
    try:
        return json.loads(data[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"the header is not JSON ({error})") from None


def _crc32(array):
    return zlib.crc32(array.reshape(-1).view(np.uint8))


def _backend():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"{SUFFIX} files need the safetensors package: "
                          "pip install 'tensorgrad[safetensors]'") from None
    return safetensors.numpy
