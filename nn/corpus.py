"""Text to train on: a user's UTF-8 file, or the built-in corpus.

The built-in corpus is Python source code that every machine with Python has: the modules
of the standard library, read at run time (as char-rnn was once trained on Linux source),
so nothing is downloaded and no text is shipped.
"""

import glob
import os
import sysconfig

DEFAULT_CORPUS_CHARS = 1_000_000


class CorpusError(ValueError):
    """A text that cannot be trained on; the message says why in one line."""


def default_corpus(max_chars=DEFAULT_CORPUS_CHARS):
    """The standard library's top-level modules, in name order, up to ``max_chars``."""
    directory = sysconfig.get_paths()["stdlib"]
    parts, total = [], 0
    for path in sorted(glob.glob(os.path.join(directory, "*.py"))):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if not parts:
        raise CorpusError(f"no Python source files found in the standard library at {directory}; "
                          "pass --text FILE")
    return "".join(parts)[:max_chars]


def read_text(path, min_chars):
    """The UTF-8 text of ``path``, checked to be long enough to train on."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CorpusError(f"text file not found: {path}") from None
    except IsADirectoryError:
        raise CorpusError(f"text file is a directory: {path}") from None
    except OSError as error:
        raise CorpusError(f"cannot read text file {path}: {error.strerror}") from None
    if not raw:
        raise CorpusError(f"text file is empty: {path}")
    if b"\x00" in raw:
        raise CorpusError(f"text file looks binary (it contains NUL bytes): {path}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"text file is not valid UTF-8 (byte {error.start}): {path}") from None
    check_length(text, min_chars, path)
    return text


def check_length(text, min_chars, source):
    if len(text) < min_chars:
        raise CorpusError(f"text from {source} has {len(text)} characters; training with these "
                          f"settings needs at least {min_chars} (lower --batch or --seq-len)")
