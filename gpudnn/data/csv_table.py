"""The one CSV reader: a table of stripped text cells that knows the line and column of every cell.

Used by the dataset loader (features and a label column) and by prediction inputs (features only).
Blank lines are skipped; a UTF-8 BOM is dropped; every row must have the first row's number of
fields. The first row is a header when ``header`` says so, or (None) when any of its cells is not a
number. Problems raise ValueError naming the file and the place.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class CsvTable:
    path: Path
    names: list[str] | None  # the header's cells, or None without a header
    rows: list[list[str]]  # the data rows
    lines: list[int]  # the file line of each data row

    @property
    def width(self) -> int:
        return len(self.names if self.names is not None else self.rows[0])

    def column(self, j: int) -> str:
        """Column j as messages name it: "column 3 ('age')"."""
        return f"column {j + 1}" + (f" ({self.names[j]!r})" if self.names else "")

    def index(self, label: int | str, option: str = "label") -> int:
        """The index of a column given by header name or by 0-based index (negative from the end); a
        text of digits that names no column is an index (as typed on a command line)."""
        if isinstance(label, str) and re.fullmatch(r"[+-]?\d+", label) and not (self.names and label in self.names):
            label = int(label)
        if isinstance(label, str):
            if self.names is None:
                raise ValueError(f"{self.path}: {option}={label!r} names a column, but the file has no header row")
            if self.names.count(label) != 1:
                raise ValueError(f"{self.path}: {option}={label!r} must name exactly one column; columns are "
                                 f"{self.names}")
            return self.names.index(label)
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not -self.width <= label < self.width:
                raise ValueError(f"{self.path}: {option} column index {label} is out of range for {self.width} "
                                 "columns")
            return int(label) % self.width
        raise TypeError(f"{option} must be a column name (str) or index (int), got {type(label).__name__}")

    def values(self, columns: list[int]) -> np.ndarray:
        """The cells of ``columns`` as a (rows, len(columns)) float64 array; a cell that is not a number
        is named by line and column."""
        try:
            return np.array([[row[j] for j in columns] for row in self.rows], dtype=np.float64).reshape(
                len(self.rows), len(columns))
        except ValueError:
            for row, line in zip(self.rows, self.lines):
                for j in columns:
                    if not is_number(row[j]):
                        raise ValueError(f"{self.path}: line {line}, {self.column(j)}: cannot read {row[j]!r} as a "
                                         "number") from None
            raise


def read_csv(path: Path, *, delimiter: str = ",", header: bool | None = None) -> CsvTable:
    """The table in the CSV file ``path`` (see the module docstring)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: drop a BOM
            reader = csv.reader(f, delimiter=delimiter)
            rows, lines = [], []
            for row in reader:
                cells = [c.strip() for c in row]
                if any(cells):
                    rows.append(cells)
                    lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: not a readable UTF-8 CSV file ({e})") from e
    if not rows:
        raise ValueError(f"{path}: empty CSV file")
    width = len(rows[0])
    for cells, line in zip(rows, lines):
        if len(cells) != width:
            raise ValueError(f"{path}: line {line} has {len(cells)} fields, expected {width}")
    if header is None:
        header = not all(is_number(c) for c in rows[0])
    if not header:
        return CsvTable(path, None, rows, lines)
    if len(rows) == 1:
        raise ValueError(f"{path}: no data rows after the header")
    return CsvTable(path, rows[0], rows[1:], lines[1:])
