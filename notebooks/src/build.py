"""Build an executed notebook from its source: ``python notebooks/src/build.py notebooks/src/13_x.py``.

A source is a Python file cut into cells by lines ``# %%`` (code) and ``# %% [markdown]``
(markdown, written as comment lines ``# text``). The notebook notebooks/13_x.ipynb is written
with nbformat and executed with nbclient, so that the stored notebook has its outputs.
"""

import pathlib
import re
import sys

import nbclient
import nbformat

MARKER = re.compile(r"^# %%( \[markdown\])?\s*$")


def cells(source):
    """The (kind, text) cells of a percent-format source."""
    found, kind, lines = [], None, []
    for line in source.splitlines():
        match = MARKER.match(line)
        if match:
            if kind is not None:
                found.append((kind, lines))
            kind, lines = ("markdown" if match.group(1) else "code"), []
        elif kind == "markdown":
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        elif kind == "code":
            lines.append(line)
    if kind is not None:
        found.append((kind, lines))
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in found]


def build(path):
    path = pathlib.Path(path)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, text in cells(path.read_text()):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(text))
    root = path.parent.parent
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(root)}}).execute()
    target = root / f"{path.stem}.ipynb"
    nbformat.write(notebook, target)
    return target


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print("wrote", build(name))
