"""The built-in corpus: Python's standard library source with its decoration collapsed, so
that a character model has no long run of one character to fall into when sampled (the
README's `sample --temperature 0.6 --prime "def "` once printed `def ====…`).

What is tested is the corpus, not a trained model: training the default model takes minutes.
"""

import re

from nn.corpus import DEFAULT_CORPUS_CHARS, LONGEST_PUNCTUATION_RUN, collapse_decoration, default_corpus


def test_the_default_corpus_has_no_long_runs_of_one_punctuation_character():
    text = default_corpus()
    assert len(text) == DEFAULT_CORPUS_CHARS
    runs = [m.group(0) for m in re.finditer(r"([^\w\s]|_)\1*", text)]
    assert max(map(len, runs)) <= LONGEST_PUNCTUATION_RUN
    assert not re.search(r"^[ \t]*#?[ \t]*([^\w\s]|_)\1{3,}[ \t]*$", text, re.MULTILINE)  # no banners
    assert text.count("def ") > 1000 and text.count('"""') > 1000  # still Python, docstrings and all


def test_collapse_decoration_leaves_code_alone_and_removes_banners():
    code = 'def f(x):\n    """Doc."""\n    return x ** 2 == {"a": [1, 2]}  # fine\n'
    assert collapse_decoration(code) == code
    decorated = "# " + "=" * 70 + "\nx = 1\n    " + "-" * 20 + "\n# ---- part ----\ns = '" + "*" * 30 + "'\n"
    assert collapse_decoration(decorated) == "x = 1\n# ---- part ----\ns = '****'\n"
