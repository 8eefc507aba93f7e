"""The one CSV reader: a table of stripped text cells that knows the line and column of every cell.

Used by the dataset loader (features and a label column) and by prediction inputs (features only).
Blank lines are skipped; a UTF-8 BOM is dropped; every row must have the first row's number of
fields. The first row is a header when ``header`` says so, or (None) when any of its cells is not a
number. Problems raise ValueError naming the file and the place.
"""

from __future__ import annotations

import csv
import io
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
        except ValueError:  # find the cell; Python's float() is the rule (NumPy's parser is narrower)
            out = np.empty((len(self.rows), len(columns)))
            for i, (row, line) in enumerate(zip(self.rows, self.lines)):
                for k, j in enumerate(columns):
                    try:
                        out[i, k] = float(row[j])
                    except (ValueError, OverflowError):
                        raise ValueError(f"{self.path}: line {line}, {self.column(j)}: cannot read {row[j]!r} as a "
                                         "number") from None
            return out


def _utf8_text(path: Path) -> str:
    """The file's text, a UTF-8 BOM dropped; bytes that are not UTF-8 are named by line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{path}: a UTF-16 text file; save it as UTF-8 to read it as CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: byte 0x{data[e.start]:02x} is not UTF-8 text; save the file as "
                         "UTF-8") from None


def read_csv(path: Path, *, delimiter: str = ",", header: bool | None = None) -> CsvTable:
    """The table in the CSV file ``path`` (see the module docstring)."""
    text = _utf8_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, lines = [], []
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if any(cells):
                rows.append(cells)
                lines.append(reader.line_num)
    except csv.Error as e:
        raise ValueError(f"{path}: line {reader.line_num}: not a readable CSV row ({e})") from None
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
