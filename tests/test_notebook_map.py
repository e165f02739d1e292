"""The map from the course notes to the notebooks (notebooks/README.md) points at sections that exist.

Every row of the map names a notebook that exists and a section heading in it (a markdown
heading of a cell; a heading that goes on after a colon may be cited up to the colon), or
the notebook "—" and a reason why the item is not run.
"""

import pathlib
import re

import pytest

NOTEBOOKS = pathlib.Path(__file__).parent.parent / "notebooks"
README = NOTEBOOKS / "README.md"
NOT_RUN = "—"
COLUMNS = ["notes", "item", "notebook", "section", "asserts"]


def _cells(line):
    """The cells of a markdown table row, split at the pipes that are not escaped."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _tables(text):
    """{heading: [row dicts]} for every table with the map's columns, under its nearest heading."""
    tables, heading, header = {}, None, None
    for line in text.splitlines():
        if line.startswith("#"):
            heading, header = line.lstrip("#").strip(), None
        elif line.startswith("|"):
            cells = _cells(line)
            if header is None:
                header = cells
            elif set("".join(cells)) <= set("-: ") or header != COLUMNS:
                continue
            else:
                tables.setdefault(heading, []).append(dict(zip(COLUMNS, cells, strict=True)))
        else:
            header = None
    return tables


def _headings(path):
    """The markdown headings of a notebook's cells, without the leading #s."""
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    return [line.lstrip("#").strip() for cell in notebook.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")]


def _has_section(headings, section):
    return any(h == section or h.startswith(section + ":") for h in headings)


def _notebook(row):
    return row["notebook"].strip("`")


TABLES = _tables(README.read_text(encoding="utf-8"))
MAP = TABLES.get("The map", [])
NOTES = {row[0] for row in (_cells(line) for line in README.read_text(encoding="utf-8").splitlines()
                            if re.match(r"\| 00\d \| `00\d_[0-9a-f]{16}\.txt`", line))}


def _ids(rows):
    return [f"{row['notes']}:{row['item'][:40]}" for row in rows]


def test_the_map_covers_the_notes():
    assert NOTES == {"000", "001", "002", "003", "004"}
    assert len(MAP) >= 40 and {row["notes"] for row in MAP} == NOTES
    run = {_notebook(row) for row in MAP if row["notebook"] != NOT_RUN}
    assert {"13_notes_quizzes.ipynb", "14_long_memory_classics.ipynb"} <= run


@pytest.mark.parametrize("row", MAP, ids=_ids(MAP))
def test_each_row_names_a_notebook_and_a_section_that_exist(row):
    assert row["notes"] in NOTES and row["item"] and row["asserts"], row
    if row["notebook"] == NOT_RUN:
        assert row["section"] == NOT_RUN and row["asserts"].startswith("not run: "), row
        return
    path = NOTEBOOKS / _notebook(row)
    assert path.exists(), f"{path.name} does not exist"
    headings = _headings(path)
    assert _has_section(headings, row["section"]), f"{path.name}: no section {row['section']!r} in {headings}"
