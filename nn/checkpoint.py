"""Checkpoints: nested dicts of arrays, numbers and strings as one .npz file, written atomically.

An .npz file is a zip archive of .npy arrays. Nested keys are joined with "/" into the
entry names (``np.load(path)["model/weight"]`` works), and the entry ``__layout__`` (a JSON
string) records the nesting and which values were Python numbers or strings, so that
:func:`load` gives back what :func:`save` got. Nothing is pickled: loading a checkpoint
never runs code from it.

A path ending in ``.safetensors`` is written and read in the safetensors format instead
(:mod:`nn.safetensors_io`): a flat dict of arrays that PyTorch reads with
``safetensors.torch.load_file``.
"""

import json
import os
import zipfile
import zlib

import numpy as np

from nn import safetensors_io
from nn.atomic import open_to_read, write_atomically

_SEPARATOR = "/"
_LAYOUT = "__layout__"
_RESTORE = {  # how each kind of value is rebuilt from its array
    "array": lambda array: array,
    "numpy": lambda array: array[()],  # a NumPy scalar
    "python": lambda array: array.item(),  # a Python bool, int, float or str
}
_READ_ERRORS = (ValueError, OSError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error)


def save(obj, path):
    """Write the dict ``obj`` to ``path`` as an .npz file, atomically.

    ``obj`` may nest dicts; its keys are non-empty strings without "/", and its values
    ndarrays (of any dtype but object), NumPy scalars, or Python bools, ints, floats and
    strings, which are stored as 0-d arrays. A model's and an optimizer's ``state_dict()``,
    a configuration and a vocabulary's ``chars`` all fit.

    The archive is written to a temporary file in the same directory, flushed to disk and
    renamed over ``path``: an error or a crash midway leaves any previous file at ``path``
    intact and no temporary file behind. A ``.safetensors`` path takes a flat dict of
    arrays (e.g. ``model.state_dict()``) and writes it in that format, as atomically.
    """
    if safetensors_io.is_safetensors_path(path):
        safetensors_io.save_file(obj, path)
        return
    arrays = {}
    layout = _flatten(obj, "", arrays)
    arrays[_LAYOUT] = np.array(json.dumps(layout))

    def write(file):
        with zipfile.ZipFile(file, "w") as archive:
            for name, array in arrays.items():
                with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, array, allow_pickle=False)

    write_atomically(path, write)


def load(path):
    """Read a file written by :func:`save` and return the dict that was saved.

    Any other .npz file (e.g. from ``np.savez``) gives a flat dict of its arrays. Arrays are
    read with ``allow_pickle=False``. A missing file is a FileNotFoundError, a directory an
    IsADirectoryError; a file that is not a readable .npz archive (truncated, another
    format, holding object arrays) is a ValueError naming it. A ``.safetensors`` path gives
    the flat dict of arrays it holds.
    """
    if safetensors_io.is_safetensors_path(path):
        return safetensors_io.load_file(path)
    path = os.fspath(path)
    with open_to_read(path) as file:  # opened here, so that it is closed whatever np.load raises
        try:
            archive = np.load(file, allow_pickle=False)
        except _READ_ERRORS as error:
            raise ValueError(f"nn.load: {path!r} is not a readable .npz file (truncated or of another "
                             f"format): {error}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"nn.load: {path!r} holds a single .npy array, not an .npz archive")
        arrays = {}
        with archive:
            try:
                damaged = archive.zip.testzip()  # checks every entry's CRC: a flipped bit is an error
            except _READ_ERRORS as error:
                damaged = f"? ({error})"
            if damaged is not None:
                raise ValueError(f"nn.load: {path!r} is damaged: entry {damaged} fails its checksum")
            for name in archive.files:
                try:
                    arrays[name] = archive[name]
                except _READ_ERRORS as error:
                    raise ValueError(f"nn.load: cannot read entry {name!r} of {path!r}: {error}") from None
    layout = arrays.pop(_LAYOUT, None)
    if layout is None:
        return arrays
    try:
        return _unflatten(json.loads(layout.item()), "", arrays)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"nn.load: {path!r} is damaged: its layout does not match its entries "
                         f"({type(error).__name__}: {error})") from None


def _flatten(tree, prefix, arrays):
    """Put the leaves of ``tree`` into ``arrays`` by their "/"-joined key path; return the layout."""
    if not isinstance(tree, dict):
        raise TypeError(f"nn.save: expected a dict, got {type(tree).__name__}"
                        + (f" at {prefix[:-1]!r}" if prefix else ""))
    layout = {}
    for key, value in tree.items():
        if not isinstance(key, str) or not key or _SEPARATOR in key or prefix + key == _LAYOUT:
            raise ValueError(f"nn.save: key {key!r} at {prefix[:-1]!r} is not allowed (keys are non-empty "
                             f"strings without {_SEPARATOR!r}, and {_LAYOUT!r} is reserved)")
        name = prefix + key
        if isinstance(value, dict):
            layout[key] = _flatten(value, name + _SEPARATOR, arrays)
            continue
        if isinstance(value, np.ndarray):
            kind = "array"
        elif isinstance(value, np.generic):
            kind = "numpy"
        elif isinstance(value, bool | int | float | str):
            kind = "python"
        else:
            raise TypeError(f"nn.save: {name!r} is a {type(value).__name__}; only dicts, ndarrays, numbers "
                            "and strings can be saved")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"nn.save: {name!r} would be stored as an object array, which cannot be "
                            "loaded without pickle")
        arrays[name], layout[key] = array, kind
    return layout


def _unflatten(layout, prefix, arrays):
    """The nested dict that ``layout`` describes, with its leaves taken from ``arrays``."""
    tree = {}
    for key, kind in layout.items():
        name = prefix + key
        tree[key] = (_unflatten(kind, name + _SEPARATOR, arrays) if isinstance(kind, dict)
                     else _RESTORE[kind](arrays[name]))
    return tree

