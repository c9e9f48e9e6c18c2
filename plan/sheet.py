"""Campaign sheets (CSV/XLSX): read every cell as text, with spreadsheet row numbers.

Row 1 is the header, so the first asset is row 2, as a spreadsheet shows it (a cell with a
line break is still one row; a blank line is a row too). README.md ("Campaign sheets")
documents the columns, docs/inputs.md the caps and what hostile input gets.

Problems that stop the whole file (unreadable, over a cap, bad header) raise ``InputError``;
problems in one cell (bytes that are not UTF-8, a control character, an XLSX formula or
error value, cells beyond the header) are kept on that row's ``problems`` and the other rows
are unaffected.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from plan.collector import cycle_collector_paused
from plan.errors import InputError, Problem

REQUIRED_COLUMNS = ("asset_id", "style")
RESERVED_COLUMNS = ("asset_id", "style", "variants", "placements", "alt_text", "locale")
MAX_SHEET_BYTES = 50 * 1024 * 1024  # the file as stored (CSV or XLSX)
MAX_XLSX_UNPACKED_BYTES = 200 * 1024 * 1024  # all parts of an XLSX, uncompressed (zip bombs)
MAX_ROWS = 100_000  # rows below the header, blank ones included (bench/plan_100k.py: 100k rows plan in < 1 GiB)
MAX_COLUMNS = 100
MAX_CELL_CHARS = 1000  # checked per row by the planner
MAX_CAMPAIGN_CHARS = 100
_COLUMN = re.compile(r"[a-z][a-z0-9_]{0,63}")
# C0 controls except tab/newline/carriage return, DEL, C1 controls: never part of an asset's text.
_CONTROL_RANGES = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_NOT_UTF8_RANGE = r"\udc80-\udcff"  # undecodable bytes, kept by errors="surrogateescape"
_CONTROL = re.compile(f"[{_CONTROL_RANGES}]")
_NOT_UTF8 = re.compile(f"[{_NOT_UTF8_RANGE}]+")
# Either, as one character class (a fast scan; a tab is neither).
_BAD_CHARACTER = re.compile(f"[{_CONTROL_RANGES}{_NOT_UTF8_RANGE}]")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls and password-protected workbooks


@dataclass(frozen=True)
class SheetRow:
    row: int  # spreadsheet row number (header = 1)
    cells: dict[str, str]
    problems: tuple[Problem, ...] = ()  # cells that could not be read as text; the row is not planned


@dataclass(frozen=True)
class Sheet:
    path: Path
    columns: tuple[str, ...]
    rows: tuple[SheetRow, ...]

    @property
    def campaign(self) -> str:
        return campaign_name(self.path)


def campaign_name(sheet: Path) -> str:
    """The campaign name: the sheet's file name without extension, made path-safe (it names
    the campaign's folder, so it follows ``plan.names``: letters, digits, '._-', starting with a
    letter or digit, and a Windows device name gets a '_')."""
    from plan.names import DEVICE_NAMES

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(sheet).stem)[:MAX_CAMPAIGN_CHARS]
    name = name.lstrip("._-").rstrip(".-") or "campaign"
    if DEVICE_NAMES.fullmatch(name):  # CON.csv -> CON_, aux.v2.csv -> aux_.v2
        head, dot, tail = name.partition(".")
        name = f"{head}_{dot}{tail}"[:MAX_CAMPAIGN_CHARS]
    return name


def _escape_bytes(text: str) -> str:
    return "".join(f"\\x{ord(ch) - 0xDC00:02x}" for ch in text)


def _cell_problem(value: str) -> str | None:
    """Why a cell's text is not usable, or None."""
    bad = _NOT_UTF8.search(value)
    if bad:
        return (f"bytes {_escape_bytes(bad.group())} are not UTF-8 (the sheet mixes text encodings); "
                "save the sheet as 'CSV UTF-8' and check this cell")
    control = _CONTROL.search(value)
    if control:
        return f"contains the control character U+{ord(control.group()):04X}; cells hold plain text"
    return None


def _decode_csv(data: bytes, where: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError([Problem(where, "is UTF-16 text; save the sheet as 'CSV UTF-8'", code="not_utf8")])
    # Undecodable bytes become lone surrogates and are reported on their row and column.
    return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")


def _csv_records(path: Path, where: str) -> Iterator[list[object]]:
    reader = csv.reader(io.StringIO(_decode_csv(path.read_bytes(), where), newline=""), strict=True)
    # A long cell is the planner's per-row problem, not a reader error for the whole file. The
    # limit is process-wide: only ever raised, never restored (no race between readers).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_SHEET_BYTES))
    try:
        yield from reader
    except csv.Error as exc:
        raise InputError([Problem(where, f"is not valid CSV near line {reader.line_num}: {exc}",
                                  code="bad_csv")]) from None


def _check_xml_prolog(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> None:
    """Refuse any DTD in an XLSX part (OPC forbids them; they carry XXE and entity bombs).

    A DTD can only come before the root element, so the part is parsed with defusedxml
    (DTDs and entities forbidden) up to its first element."""

    class Root(Exception):
        pass

    class Target:
        def start(self, tag: str, attrs: dict) -> None:
            raise Root

    parser = DefusedXMLParser(target=Target(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        with archive.open(info) as part:
            while chunk := part.read(64 * 1024):
                parser.feed(chunk)
    except Root:
        return
    except DefusedXmlException as exc:
        raise InputError([Problem(where, f"part {info.filename!r} declares a DTD or entities ({type(exc).__name__}); "
                                         "workbooks never need them, so the file is refused",
                                  code="unsafe_xml")]) from None
    except Exception as exc:  # noqa: BLE001 - any parse failure means the part is not a workbook part
        raise InputError([Problem(where, f"part {info.filename!r} is not valid XML: {exc}", code="bad_xlsx")]) from None


def _check_xlsx_archive(path: Path, where: str) -> None:
    with path.open("rb") as handle:
        if handle.read(len(_OLE_MAGIC)) == _OLE_MAGIC:
            raise InputError([Problem(where, "is a legacy .xls or password-protected workbook; save it as .xlsx "
                                             "without a password", code="bad_xlsx")])
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, NotImplementedError, ValueError, ... on damaged files
        raise InputError([Problem(where, f"is not an XLSX workbook (not a readable zip archive: {exc})",
                                  code="bad_xlsx")]) from None
    with archive:
        infos = archive.infolist()
        unpacked = sum(info.file_size for info in infos)  # zipfile never inflates past these sizes
        if unpacked > MAX_XLSX_UNPACKED_BYTES:
            raise InputError([Problem(where, f"unpacks to {unpacked} bytes; the cap for XLSX sheets is "
                                             f"{MAX_XLSX_UNPACKED_BYTES} bytes", code="file_too_large")])
        for info in infos:
            if info.filename.lower().endswith((".xml", ".rels")):
                _check_xml_prolog(archive, info, where)


def _xlsx_value(cell: object) -> object:
    """A cell's value; formulas and error values are refused (only their cached result would
    be readable, which may be missing or stale)."""
    value = getattr(cell, "value", None)
    kind = getattr(cell, "data_type", None)
    if kind == "f":
        return _Refused(f"is a formula ({str(value)[:40]!r}); brandbatch reads values: paste the cells as values")
    if kind == "e":
        return _Refused(f"holds the spreadsheet error {value!r}")
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


@dataclass(frozen=True)
class _Refused:
    reason: str


def _xlsx_records(path: Path, where: str) -> Iterator[list[object]]:
    from openpyxl import load_workbook

    _check_xlsx_archive(path, where)
    try:
        book = load_workbook(path, read_only=True, data_only=False, keep_links=False)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for broken workbooks
        raise InputError([Problem(where, f"cannot be read as an XLSX workbook: {type(exc).__name__}: {exc}",
                                  code="bad_xlsx")]) from None
    try:
        if not book.worksheets:
            raise InputError([Problem(where, "the workbook has no worksheet", code="bad_xlsx")])
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # do not trust the stored dimensions: read what is there
        for cells in sheet.iter_rows():
            yield [_xlsx_value(cell) for cell in cells]
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError([Problem(where, f"cannot be read as an XLSX workbook: {type(exc).__name__}: {exc}",
                                  code="bad_xlsx")]) from None
    finally:
        book.close()


def _records(path: Path, where: str) -> Iterator[list[object]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_records(path, where)
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_records(path, where)
    raise InputError([Problem(where, f"sheet must be .csv or .xlsx but is {suffix or 'without extension'!r}",
                              code="unsupported_format")])


def _header(record: list[object], where: str) -> tuple[list[str], list[Problem]]:
    names = ["" if v is None or isinstance(v, _Refused) else str(v).strip().lower() for v in record]
    while names and not names[-1]:
        names.pop()
    problems = []
    for index, value in enumerate(record[: len(names)]):
        if isinstance(value, _Refused):
            problems.append(Problem(where, f"column {index + 1} header {value.reason}", 1, code="bad_header"))
    if len(names) > MAX_COLUMNS:
        problems.append(Problem(where, f"has {len(names)} columns; at most {MAX_COLUMNS}", 1, code="too_many_columns"))
        return names, problems
    problems += [
        Problem(where, f"column name must be lowercase letters, digits and '_' (at most 64) but is {c!r}", 1,
                c if _COLUMN.fullmatch(c) else f"column {i + 1}", code="bad_header")
        for i, c in enumerate(names) if c and not _COLUMN.fullmatch(c)
    ]
    problems += [Problem(where, f"column {c!r} appears more than once", 1, c, code="duplicate_column")
                 for c in sorted(set(names)) if c and names.count(c) > 1]
    problems += [Problem(where, "required column is missing", 1, c,
                         code="missing_column") for c in REQUIRED_COLUMNS if c not in names]
    return names, problems


def _row(number: int, record: list[object], names: list[str], where: str, named: bool) -> SheetRow | None:
    """One data row, or None when it is blank. ``named``: every column has a name."""
    if named and len(record) == len(names):  # the common case, at once: text only (join refuses anything else)
        try:
            clean = not _BAD_CHARACTER.search("\t".join(record))
        except TypeError:
            clean = False
        if clean:
            cells = dict(zip(names, map(str.strip, record)))
            return SheetRow(row=number, cells=cells) if any(cells.values()) else None
    cells: dict[str, str] = {}
    problems: list[Problem] = []
    width = len(names)
    for index, value in enumerate(record[:width]):
        name = names[index]
        if isinstance(value, _Refused):
            problems.append(Problem(where, value.reason, number, name or f"column {index + 1}", code="bad_cell"))
            continue
        text = "" if value is None else str(value).strip()
        if not name:
            if text:
                problems.append(Problem(where, f"column {index + 1} has a value but no header", number,
                                        f"column {index + 1}", code="bad_cell"))
            continue
        reason = _cell_problem(text)
        if reason:
            problems.append(Problem(where, reason, number, name, code="bad_cell"))
        cells[name] = text
    extra = [i for i, v in enumerate(record[width:], start=width) if v is not None and str(v).strip() != ""]
    if extra:
        problems.append(Problem(where, f"has a value in column {extra[0] + 1}, beyond the {width} named columns",
                                number, f"column {extra[0] + 1}", code="bad_cell"))
    for name in names:
        if name:
            cells.setdefault(name, "")
    if not problems and not any(cells.values()):
        return None  # blank lines are not assets
    return SheetRow(row=number, cells=cells, problems=tuple(problems))


def _rows(records: Iterable[list[object]], names: list[str], where: str) -> list[SheetRow]:
    rows = []
    named = all(names)
    for number, record in enumerate(records, start=2):
        if number - 1 > MAX_ROWS:
            raise InputError([Problem(where, f"has more than {MAX_ROWS} rows below the header; split the campaign",
                                      code="too_many_rows")])
        row = _row(number, record, names, where, named)
        if row is not None:
            rows.append(row)
    return rows


def read_sheet(path: Path) -> Sheet:
    """Read a sheet; raises InputError for problems that stop every row (file, caps, header)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError([Problem(where, "file not found", code="file_not_found")])
    if path.stat().st_size > MAX_SHEET_BYTES:
        raise InputError([Problem(where, f"file is larger than the {MAX_SHEET_BYTES} byte cap for sheets",
                                  code="file_too_large")])
    records = _records(path, where)
    try:
        first = next(records, None)
        if first is None:
            raise InputError([Problem(where, "the sheet is empty (row 1 must be the header)", 1, code="empty_sheet")])
        names, problems = _header(first, where)
        if problems:
            raise InputError(problems)
        # CSV rows are plain strings and dicts (openpyxl's objects for XLSX are left to the collector)
        with cycle_collector_paused() if path.suffix.lower() == ".csv" else nullcontext():
            rows = _rows(records, names, where)
    except OSError as exc:
        raise InputError([Problem(where, f"cannot be read: {exc}", code="file_unreadable")]) from None
    finally:
        records.close()
    return Sheet(path=path, columns=tuple(n for n in names if n), rows=tuple(rows))
