"""Campaign sheets (CSV/XLSX): read every cell as text, with spreadsheet row numbers.

Row 1 is the header, so the first asset is row 2, as a spreadsheet shows it. README.md
("Campaign sheets") documents the columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from plan.errors import InputError, Problem

REQUIRED_COLUMNS = ("asset_id", "style")
RESERVED_COLUMNS = ("asset_id", "style", "variants", "placements", "alt_text")
MAX_SHEET_BYTES = 50 * 1024 * 1024
MAX_CELL_CHARS = 1000
_COLUMN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class SheetRow:
    row: int  # spreadsheet row number (header = 1)
    cells: dict[str, str]


@dataclass(frozen=True)
class Sheet:
    path: Path
    columns: tuple[str, ...]
    rows: tuple[SheetRow, ...]

    @property
    def campaign(self) -> str:
        """The campaign name: the sheet's file name without extension, made path-safe."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.path.stem).strip(".-") or "campaign"


def _read_frame(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if suffix in (".xlsx", ".xlsm"):
        return pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
    raise InputError([Problem(str(path), f"sheet must be .csv or .xlsx but is {suffix or 'without extension'!r}")])


def read_sheet(path: Path) -> Sheet:
    """Read a sheet; raises InputError for problems that stop every row (file, header)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError([Problem(where, "file not found")])
    if path.stat().st_size > MAX_SHEET_BYTES:
        raise InputError([Problem(where, f"file is larger than the {MAX_SHEET_BYTES} byte cap for sheets")])
    try:
        frame = _read_frame(path)
    except InputError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError([Problem(where, f"cannot be read as a sheet: {exc}")]) from None
    columns = tuple(str(c).strip().lower() for c in frame.columns)
    problems = [
        Problem(where, f"column name must be lowercase letters, digits and '_' but is {c!r}", 1, c)
        for c in columns if not _COLUMN.match(c)
    ]
    problems += [
        Problem(where, f"column {c!r} appears more than once", 1, c) for c in sorted(set(columns)) if columns.count(c) > 1
    ]
    problems += [Problem(where, "required column is missing", 1, c) for c in REQUIRED_COLUMNS if c not in columns]
    if problems:
        raise InputError(problems)
    frame.columns = list(columns)
    rows = []
    for offset, record in enumerate(frame.to_dict(orient="records")):
        cells = {k: ("" if v is None else str(v)).strip() for k, v in record.items()}
        if any(cells.values()):  # blank lines are not assets
            rows.append(SheetRow(row=offset + 2, cells=cells))
    return Sheet(path=path, columns=columns, rows=tuple(rows))
