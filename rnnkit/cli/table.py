"""Reading the user's CSV files: columns by name, numbers checked cell by cell.

The standard library's ``csv`` reader and NumPy, no pandas: every problem becomes a one-line
ValueError that names the file, the column and the first bad row (counted as a spreadsheet
does: the header is row 1, the first data row is row 2).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["Table", "read_csv"]


@dataclass(frozen=True)
class Table:
    """A CSV file's header and its cells as strings, column by column."""

    path: Path
    columns: tuple[str, ...]
    cells: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.cells[self.columns[0]]) if self.columns else 0

    def require(self, names: Sequence[str], option: str) -> None:
        """A ValueError naming the first of ``names`` the file lacks, and what it has."""
        for name in names:
            if name not in self.cells:
                have = ", ".join(self.columns)
                raise ValueError(f"{self.path}: no column {name!r} (given by {option}); the "
                                 f"columns are: {have}")

    def text(self, name: str) -> list[str]:
        self.require([name], "name")
        return self.cells[name]

    def numbers(self, name: str) -> NDArray[np.float64]:
        """Column ``name`` as float64; an empty, non-numeric or infinite cell is an error."""
        self.require([name], "name")
        out = np.empty(len(self), dtype=np.float64)
        for i, cell in enumerate(self.cells[name]):
            if not cell.strip():
                raise ValueError(f"{self.path}: column {name!r} has an empty cell at row {i + 2}; "
                                 "fill or drop missing values first")
            try:
                out[i] = float(cell)
            except ValueError:
                raise ValueError(f"{self.path}: column {name!r} is not numeric: row {i + 2} holds "
                                 f"{cell!r}") from None
            if not np.isfinite(out[i]):
                raise ValueError(f"{self.path}: column {name!r} holds {cell!r} at row {i + 2}; "
                                 "only finite numbers can be used")
        return out

    def matrix(self, names: Sequence[str]) -> NDArray[np.float64]:
        """Columns ``names`` side by side: (rows, len(names)) float64."""
        if not names:
            return np.empty((len(self), 0))
        return np.stack([self.numbers(n) for n in names], axis=1)


def read_csv(path: Path, option: str = "--csv") -> Table:
    """Read a CSV with a header row. A missing, empty or ragged file is a ValueError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{option}: file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"{option}: {path} is not a file")
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            rows = list(csv.reader(f))
        except (csv.Error, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a readable CSV file ({e})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ValueError(f"{path} is empty: expected a header row and data rows")
    header = tuple(name.strip() for name in rows[0])
    if len(set(header)) != len(header):
        twice = sorted({n for n in header if header.count(n) > 1})
        raise ValueError(f"{path}: column names appear twice: {', '.join(twice)}")
    body = rows[1:]
    if not body:
        raise ValueError(f"{path} has a header but no data rows")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {i + 2} has {len(row)} cells, the header has "
                             f"{len(header)}")
    cells = {name: [row[j].strip() for row in body] for j, name in enumerate(header)}
    return Table(path, header, cells)
