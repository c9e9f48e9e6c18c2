"""Properties of the sheet parser: what a spreadsheet tool writes is what brandbatch reads."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
from hypothesis import given
from hypothesis import strategies as st

from plan.sheet import read_sheet
from tests.hardening.conftest import bounded

COLUMNS = ["asset_id", "style", "product", "scene"]
# Text a spreadsheet can hold: no surrogates, no control characters other than tab/newline/CR.
PLAIN = st.characters(blacklist_categories=("Cs",), blacklist_characters=[
    *map(chr, range(0x00, 0x09)), "\x0b", "\x0c", *map(chr, range(0x0e, 0x20)), *map(chr, range(0x7f, 0xa0))])
CELL = st.text(PLAIN, max_size=30)
TABLE = st.lists(st.lists(CELL, min_size=0, max_size=len(COLUMNS)), max_size=12)


def _expected(table: list[list[str]]) -> list[tuple[int, dict[str, str]]]:
    rows = []
    for number, record in enumerate(table, start=2):
        cells = {name: (record[i] if i < len(record) else "").strip() for i, name in enumerate(COLUMNS)}
        if any(cells.values()):
            rows.append((number, cells))
    return rows


# Excel and csv.writer end lines with CRLF; tools that end them with LF quote every cell (a
# bare CR in an unquoted cell would be a line break to any reader).
DIALECTS = st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)])


@bounded(100)
@given(table=TABLE, bom=st.booleans(), dialect=DIALECTS)
def test_csv_round_trip(tmp_path: Path, table, bom, dialect):
    text = io.StringIO()
    csv.writer(text, lineterminator=dialect[0], quoting=dialect[1]).writerows([COLUMNS, *table])
    path = tmp_path / "p.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.getvalue().encode("utf-8"))
    sheet = read_sheet(path)
    assert sheet.columns == tuple(COLUMNS)
    assert [(r.row, r.cells) for r in sheet.rows] == _expected(table)
    assert all(r.problems == () for r in sheet.rows)


@bounded(100)
@given(table=st.lists(st.lists(st.text(max_size=12), max_size=len(COLUMNS)), max_size=6))
def test_csv_any_text_is_read_or_refused_on_its_own_row_and_column(tmp_path: Path, table):
    text = io.StringIO()
    csv.writer(text).writerows([COLUMNS, *table])
    path = tmp_path / "any.csv"
    path.write_text(text.getvalue(), encoding="utf-8")
    expected = dict(_expected(table))
    for row in read_sheet(path).rows:
        bad = {p.column for p in row.problems}
        assert all(p.row == row.row and "\n" not in str(p) for p in row.problems)
        assert {k: v for k, v in row.cells.items() if k not in bad} == \
            {k: v for k, v in expected[row.row].items() if k not in bad}


XLSX_TEXT = CELL.filter(lambda s: not s.startswith("=") and s.strip() not in openpyxl.cell.cell.ERROR_CODES).map(
    lambda s: s.replace("\r", ""))  # XML turns a bare CR into a newline


@bounded(40, deadline_ms=5000)
@given(table=st.lists(st.lists(XLSX_TEXT, max_size=len(COLUMNS)), max_size=6))
def test_xlsx_round_trip(tmp_path: Path, table):
    book = openpyxl.Workbook()
    for record in [COLUMNS, *table]:
        book.active.append([value if value != "" else None for value in record])
    path = tmp_path / "p.xlsx"
    book.save(path)
    sheet = read_sheet(path)
    assert [(r.row, r.cells) for r in sheet.rows] == _expected(table)
