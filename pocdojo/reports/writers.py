"""Row writers for exports: CSV (stdlib) and XLSX (openpyxl write-only), constant memory.

Both write to a file as rows arrive; nothing holds more than the current row.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import IO, Protocol

from pocdojo.reports.rows import COLUMNS, ExportRow

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
# Spreadsheet apps run cells starting with these as formulas (CSV/formula injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe_text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


class RowWriter(Protocol):
    def write(self, row: ExportRow) -> None: ...
    def close(self) -> None: ...


class CsvWriter:
    def __init__(self, path: Path) -> None:
        # utf-8-sig: Excel then reads accents correctly.
        self._file: IO[str] = path.open("w", newline="", encoding="utf-8-sig")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)

    def write(self, row: ExportRow) -> None:
        out: list[str] = []
        for cell in row.cells():
            if cell is None:
                out.append("")
            elif isinstance(cell, dt.datetime):
                out.append(cell.isoformat() + "Z")
            elif isinstance(cell, dt.date):
                out.append(cell.isoformat())
            else:
                out.append(_safe_text(cell))
        self._csv.writerow(out)

    def close(self) -> None:
        self._file.close()


class XlsxWriter:
    """openpyxl's write-only workbook streams rows to a temporary file as they come."""

    def __init__(self, path: Path) -> None:
        from openpyxl import Workbook

        self._path = path
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet("PoCs")
        self._sheet.append(list(COLUMNS))

    def write(self, row: ExportRow) -> None:
        self._sheet.append([_safe_text(c) if isinstance(c, str) else c for c in row.cells()])

    def close(self) -> None:
        self._book.save(self._path)
