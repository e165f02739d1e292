"""The files of nn.save and nn.load: written atomically (all of it, or after an error or a
crash the previous file), and opened for reading with errors that name nn.load."""

import contextlib
import os
import uuid


def write_atomically(path, write):
    """Call ``write(file)`` on a new binary file that then replaces ``path`` in one step.

    The file is written under a temporary name in the same directory, flushed to disk and
    renamed over ``path``: an error or a crash midway leaves any previous file at ``path``
    intact and no temporary file behind.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def open_to_read(path):
    """The file at ``path`` opened for reading bytes; a missing file or a directory is an
    error naming nn.load and the path."""
    path = os.fspath(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"nn.load: no such file: {path!r}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"nn.load: {path!r} is a directory, not a file") from None


def _fsync_directory(directory):
    """Make the rename itself durable, where the system allows syncing a directory."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
