"""Text to train on: a user's UTF-8 file, or the built-in corpus.

The built-in corpus is Python source code that every machine with Python has: the modules
of the standard library, read at run time (as char-rnn was once trained on Linux source),
so nothing is downloaded and no text is shipped.

Its decoration is collapsed: banner lines (``# ======…``, ``-------``) are left out and any
other run of one punctuation character is cut to four. A character model cannot count the
70 '=' of a banner; having learnt that '=' follows '=' there, it can fall into such a run
and, sampled at a low temperature, never leave it (``def ====…`` for 200 characters).
"""

import glob
import os
import re
import sysconfig

DEFAULT_CORPUS_CHARS = 1_000_000
LONGEST_PUNCTUATION_RUN = 4
_BANNER_LINE = re.compile(r"^[ \t]*#?[ \t]*([^\w\s]|_)\1{3,}[ \t]*\n", re.MULTILINE)
_PUNCTUATION_RUN = re.compile(r"([^\w\s]|_)\1{" + str(LONGEST_PUNCTUATION_RUN) + ",}")


class CorpusError(ValueError):
    """A text that cannot be trained on; the message says why in one line."""


def default_corpus(max_chars=DEFAULT_CORPUS_CHARS):
    """The standard library's top-level modules, in name order, decoration collapsed
    (:func:`collapse_decoration`), up to ``max_chars``."""
    directory = sysconfig.get_paths()["stdlib"]
    parts, total = [], 0
    for path in sorted(glob.glob(os.path.join(directory, "*.py"))):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        text = collapse_decoration(text)
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if not parts:
        raise CorpusError(f"no Python source files found in the standard library at {directory}; "
                          "pass --text FILE")
    return "".join(parts)[:max_chars]


def collapse_decoration(text):
    """``text`` without banner lines, its other runs of one punctuation character cut to
    LONGEST_PUNCTUATION_RUN (code, words, numbers and indentation are left as they are)."""
    text = _BANNER_LINE.sub("", text)
    return _PUNCTUATION_RUN.sub(lambda m: m.group(1) * LONGEST_PUNCTUATION_RUN, text)


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
