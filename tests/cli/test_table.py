"""CSV reading: columns by name, each bad cell reported with its column and row."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.cli.table import read_csv


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_numbers_and_matrix(tmp_path):
    table = read_csv(write(tmp_path, "a,b,name\n1,2.5,x\n3,-4e1,y\n"))
    assert table.columns == ("a", "b", "name") and len(table) == 2
    np.testing.assert_array_equal(table.matrix(["b", "a"]), [[2.5, 1.0], [-40.0, 3.0]])
    assert table.text("name") == ["x", "y"]


def test_blank_lines_and_bom_are_ignored(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("\ufeffa\n1\n\n2\n".encode())
    np.testing.assert_array_equal(read_csv(path).numbers("a"), [1.0, 2.0])


@pytest.mark.parametrize("text, column, message", [
    ("a,b\n1,2\n", "c", "no column 'c' .* the columns are: a, b"),
    ("a\n1\nxyz\n", "a", "column 'a' is not numeric: row 3 holds 'xyz'"),
    ("a,b\n1,2\n,3\n", "a", "column 'a' has an empty cell at row 3"),
    ("a\n1\ninf\n", "a", "holds 'inf' at row 3"),
])
def test_bad_columns(tmp_path, text, column, message):
    table = read_csv(write(tmp_path, text))
    with pytest.raises(ValueError, match=message):
        table.numbers(column)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("a,b\n", "has a header but no data rows"),
    ("a,a\n1,2\n", "column names appear twice: a"),
    ("a,b\n1,2\n3\n", "row 3 has 1 cells, the header has 2"),
])
def test_bad_files(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_csv(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="--csv: file .*nope.csv does not exist"):
        read_csv(tmp_path / "nope.csv")
