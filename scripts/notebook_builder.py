"""Shared by the build_notebook_*.py scripts: execute a list of cells and write the notebook."""

import pathlib
import sys

import nbformat
from nbclient import NotebookClient

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell


def build(cells, path):
    """Execute ``cells`` in a fresh Python 3 kernel from the current directory (the repository
    root, so that ``runs/`` lands there) and write the notebook with its outputs to ``path``."""
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(pathlib.Path.cwd())}}).execute()
    nbformat.write(notebook, path)
    print("wrote", path, file=sys.stderr)
