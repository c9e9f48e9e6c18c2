"""Hostile campaign sheets: each gets a clear problem naming the place, and only its own row
(or, for whole-file attacks, the file) is refused. docs/inputs.md describes the defences."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from defusedxml import DefusedXmlException

from exports.manifest import manifest_csv
from plan import sheet as sheet_module
from plan.errors import InputError
from plan.planner import PlanSettings, plan_campaign
from plan.sheet import MAX_COLUMNS, MAX_ROWS, MAX_SHEET_BYTES, MAX_XLSX_UNPACKED_BYTES, read_sheet

HEADER = b"asset_id,style,product,scene\n"
GOOD = b"ok-1,acme@2,a tent,a meadow\n"
LAST = b"ok-9,acme@2,a lamp,a study\n"


def _plan(path: Path, settings: PlanSettings):
    return plan_campaign(read_sheet(path), settings)


def _where(plan) -> list[tuple[int | None, str | None]]:
    return [(p.row, p.column) for p in plan.problems]


# --- CSV ---------------------------------------------------------------------------------------

def test_utf8_bom_is_read_as_text_not_as_part_of_the_first_column(write_bytes, settings_):
    plan = _plan(write_bytes(b"\xef\xbb\xbf" + HEADER + GOOD), settings_)
    assert plan.problems == [] and [r.asset_id for r in plan.rows] == ["ok-1"]


def test_mixed_encodings_refuse_only_the_cell_that_is_not_utf8(write_bytes, settings_):
    path = write_bytes(HEADER + GOOD + "ok-2,acme@2,a café,a meadow\n".encode() + b"bad-3,acme@2,a caf\xe9,a meadow\n"
                       + LAST)
    plan = _plan(path, settings_)
    assert [r.asset_id for r in plan.rows] == ["ok-1", "ok-2", "ok-9"]
    assert _where(plan) == [(4, "product")]
    assert f"{path}:4:product: bytes \\xe9 are not UTF-8" in str(plan.problems[0])
    assert all("\udce9" not in r.prompt for r in plan.rows)


def test_utf16_sheets_are_refused_with_what_to_do(write_bytes):
    path = write_bytes("asset_id,style\nx,acme@2\n".encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16.*CSV UTF-8"):
        read_sheet(path)


def test_embedded_newlines_and_blank_lines_keep_spreadsheet_row_numbers(write_bytes, settings_):
    # Row 2 has a line break inside a quoted cell, row 3 is blank: row 4 is still row 4.
    path = write_bytes(HEADER + b'ok-1,acme@2,"a tent\nwith poles",a meadow\n\nbad-4,zeta@1,a tent,a meadow\n' + LAST)
    plan = _plan(path, settings_)
    assert _where(plan) == [(4, "style")]
    assert [(r.row, r.asset_id) for r in plan.rows] == [(2, "ok-1"), (5, "ok-9")]
    assert plan.rows[0].cells["product"] == "a tent\nwith poles"


def test_an_unterminated_quote_does_not_swallow_the_rows_after_it(write_bytes):
    path = write_bytes(HEADER + b'ok-1,acme@2,"a tent,a meadow\n' + LAST)
    with pytest.raises(InputError, match=r"not valid CSV near line \d"):
        read_sheet(path)


def test_control_characters_refuse_their_cell_only(write_bytes, settings_):
    plan = _plan(write_bytes(HEADER + GOOD + b"nul-3,acme@2,a te\x00nt,a meadow\nesc-4,acme@2,a tent,\x1b[2Ja meadow\n"
                             + LAST), settings_)
    assert _where(plan) == [(3, "product"), (4, "scene")]
    assert "U+0000" in str(plan.problems[0]) and "U+001B" in str(plan.problems[1])
    assert [r.asset_id for r in plan.rows] == ["ok-1", "ok-9"]


def test_values_beyond_the_header_refuse_their_row(write_bytes, settings_):
    plan = _plan(write_bytes(HEADER + b"ok-1,acme@2,a tent,a meadow,,\nextra-3,acme@2,a tent,a meadow,surprise\n"
                             + LAST), settings_)
    assert _where(plan) == [(3, "column 5")]
    assert [r.asset_id for r in plan.rows] == ["ok-1", "ok-9"]


def test_formula_cells_stay_text_and_are_neutralised_in_the_manifest_csv(write_bytes, settings_):
    payloads = ['=HYPERLINK("http://evil.example","click")', "@SUM(1+9)*cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0",
                "-2+3", "\t=1+1"]
    text = io.StringIO()
    csv.writer(text).writerows([["asset_id", "style", "product", "scene", "headline"]]
                               + [[f"f-{i}", "acme@2", "a tent", "a meadow", p] for i, p in enumerate(payloads)])
    path = write_bytes(text.getvalue().encode())
    plan = _plan(path, settings_)
    assert plan.problems == []
    assert [r.cells["headline"] for r in plan.rows] == [p.strip() for p in payloads]  # data, never evaluated
    parsed = list(csv.DictReader(io.StringIO(manifest_csv(
        {"asset_id": r.asset_id, "headline": r.cells["headline"], "alt_text": r.cells["headline"]}
        for r in plan.rows).decode("utf-8"), newline="")))
    for row, planned in zip(parsed, plan.rows, strict=True):
        assert row["headline"] == "'" + planned.cells["headline"] and row["alt_text"] == row["headline"]


def test_sheet_byte_cap(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.write(HEADER)
        handle.truncate(MAX_SHEET_BYTES + 1)  # sparse: the cap is checked before anything is read
    with pytest.raises(InputError, match=f"larger than the {MAX_SHEET_BYTES} byte cap"):
        read_sheet(path)


def test_row_cap_counts_rows_below_the_header(write_bytes):
    body = b"".join(b"r%d,acme@2,a,b\n" % i for i in range(MAX_ROWS))
    assert len(read_sheet(write_bytes(HEADER + body)).rows) == MAX_ROWS
    with pytest.raises(InputError, match=f"more than {MAX_ROWS} rows"):
        read_sheet(write_bytes(HEADER + body + b"one-more,acme@2,a,b\n"))


def test_column_cap(write_bytes):
    def header(n: int) -> bytes:
        return ("asset_id,style," + ",".join(f"c{i}" for i in range(n - 2)) + "\n").encode()

    assert len(read_sheet(write_bytes(header(MAX_COLUMNS))).columns) == MAX_COLUMNS
    with pytest.raises(InputError, match=f"has {MAX_COLUMNS + 1} columns; at most {MAX_COLUMNS}"):
        read_sheet(write_bytes(header(MAX_COLUMNS + 1)))


def test_cell_character_cap_refuses_the_row(write_bytes, settings_):
    plan = _plan(write_bytes(HEADER + GOOD + b"long-3,acme@2," + b"a" * 1001 + b",x\n"
                             + b"huge-4,acme@2,x," + b"b" * 300_000 + b"\n" + LAST), settings_)
    assert _where(plan) == [(3, "product"), (4, "scene")]
    assert "1001 characters; at most 1000" in str(plan.problems[0]) and "300000 characters" in str(plan.problems[1])
    assert [r.asset_id for r in plan.rows] == ["ok-1", "ok-9"]


def test_hostile_column_names_are_named_by_position_on_one_line(write_bytes):
    with pytest.raises(InputError) as err:
        read_sheet(write_bytes(b'asset_id,style,"evil\nname: x"\n' + GOOD))
    (problem,) = err.value.problems
    assert problem.column == "column 3" and "\n" not in str(problem) and "'evil\\nname: x'" in str(problem)


# --- XLSX --------------------------------------------------------------------------------------

def _xlsx(path: Path, rows: list[list[object]], replace: dict[str, bytes] | None = None) -> Path:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    if replace:
        parts = {}
        with zipfile.ZipFile(path) as archive:
            parts = {name: archive.read(name) for name in archive.namelist()}
        parts.update(replace)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in parts.items():
                archive.writestr(name, data)
    return path


SHEET_XML = (b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
             b'<row r="1"><c r="A1" t="inlineStr"><is><t>asset_id</t></is></c>'
             b'<c r="B1" t="inlineStr"><is><t>style</t></is></c></row>'
             b'<row r="2"><c r="A2" t="inlineStr"><is><t>%s</t></is></c>'
             b'<c r="B2" t="inlineStr"><is><t>acme@2</t></is></c></row></sheetData></worksheet>')
XXE = (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file://%s">]>\n'
       + SHEET_XML % b"&xxe;")
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE worksheet [<!ENTITY a "lollollollollollollollollollol">'
          + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&%s;" % bytes([97 + i])) * 10) for i in range(8))
          + b"]>\n" + SHEET_XML % b"&i;")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-42")
    return path


@pytest.mark.parametrize("part", ["xl/worksheets/sheet1.xml", "[Content_Types].xml", "docProps/core.xml"])
def test_xlsx_with_an_external_entity_is_refused_naming_the_part(tmp_path, secret, part):
    payload = XXE.replace(b"%s", str(secret).encode()) if part.startswith("xl/") else \
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file://' + str(secret).encode() + b'">]><x>&xxe;</x>'
    path = _xlsx(tmp_path / "xxe.xlsx", [["asset_id", "style"], ["a", "acme@2"]], {part: payload})
    with pytest.raises(InputError) as err:
        read_sheet(path)
    message = str(err.value)
    assert f"part {part!r} declares a DTD" in message and "TOP-SECRET" not in message


def test_xlsx_billion_laughs_is_refused_before_expansion(tmp_path):
    path = _xlsx(tmp_path / "laughs.xlsx", [["asset_id"]], {"xl/worksheets/sheet1.xml": LAUGHS})
    with pytest.raises(InputError, match="'xl/worksheets/sheet1.xml' declares a DTD"):
        read_sheet(path)


def test_xlsx_dtd_hidden_in_a_utf16_part_is_refused(tmp_path, secret):
    payload = ('<?xml version="1.0" encoding="UTF-16"?>' + (XXE % str(secret).encode()).decode().split("\n", 1)[1]
               ).encode("utf-16")
    path = _xlsx(tmp_path / "utf16.xlsx", [["asset_id"]], {"xl/worksheets/sheet1.xml": payload})
    with pytest.raises(InputError, match="declares a DTD"):
        read_sheet(path)


def test_openpyxl_itself_parses_with_defusedxml(tmp_path, secret):
    """The second layer: openpyxl switches to defusedxml when it is installed (a dependency)."""
    path = _xlsx(tmp_path / "xxe.xlsx", [["asset_id"]], {"xl/worksheets/sheet1.xml": XXE % str(secret).encode()})
    assert openpyxl.DEFUSEDXML is True
    with pytest.raises(ValueError) as err:
        openpyxl.load_workbook(path)
    cause = err.value
    while cause is not None and not isinstance(cause, DefusedXmlException):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, DefusedXmlException), err.value


def test_xlsx_zip_bomb_is_refused_from_the_directory_sizes(tmp_path):
    path = tmp_path / "bomb.xlsx"
    _xlsx(path, [["asset_id", "style"]])
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("xl/media/padding.xml", "w", force_zip64=True) as part:
            block = b"<a/>" * (1 << 18)
            for _ in range(MAX_XLSX_UNPACKED_BYTES // len(block) + 1):
                part.write(block)
    assert path.stat().st_size < 2 * 1024 * 1024
    with pytest.raises(InputError, match=f"unpacks to .* the cap for XLSX sheets is {MAX_XLSX_UNPACKED_BYTES}"):
        read_sheet(path)


def test_xlsx_row_number_far_away_is_refused_quickly(tmp_path):
    far = SHEET_XML.replace(b'<row r="2"><c r="A2"', b'<row r="1500000000"><c r="A1500000000"') \
        .replace(b'r="B2"', b'r="B1500000000"') % b"late"
    path = _xlsx(tmp_path / "far.xlsx", [["asset_id"]], {"xl/worksheets/sheet1.xml": far})
    with pytest.raises(InputError, match=f"more than {MAX_ROWS} rows"):
        read_sheet(path)


def test_xlsx_formula_and_error_cells_refuse_their_row_only(tmp_path, settings_):
    rows = [["asset_id", "style", "product", "scene"], ["ok-1", "acme@2", "a tent", "a meadow"],
            ["f-3", "acme@2", '=HYPERLINK("http://evil.example")', "a meadow"],
            ["e-4", "acme@2", "a tent", "#DIV/0!"], ["ok-9", "acme@2", "a lamp", "a study"]]
    plan = _plan(_xlsx(tmp_path / "f.xlsx", rows), settings_)
    assert _where(plan) == [(3, "product"), (4, "scene")]
    assert "is a formula" in str(plan.problems[0]) and "spreadsheet error '#DIV/0!'" in str(plan.problems[1])
    assert [r.asset_id for r in plan.rows] == ["ok-1", "ok-9"]


@pytest.mark.parametrize(("data", "expected"), [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "legacy .xls or password-protected"),
    (b"asset_id,style\n", "not a readable zip archive"),
    (b"PK\x03\x04garbage", "not a readable zip archive"),
])
def test_things_that_are_not_workbooks(write_bytes, data, expected):
    with pytest.raises(InputError, match=expected):
        read_sheet(write_bytes(data, "fake.xlsx"))


def test_a_zip_that_zipfile_cannot_open_is_refused_cleanly(tmp_path):
    path = _xlsx(tmp_path / "v64.xlsx", [["asset_id", "style"]])
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 6] = 64  # "version needed to extract" 6.4: zipfile raises NotImplementedError
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a readable zip archive: zip file version 6.4"):
        read_sheet(path)


@pytest.mark.parametrize("doc", ["docs/inputs.md", "README.md"])
def test_caps_are_the_documented_ones(repo, doc):
    text = " ".join((repo / doc).read_text(encoding="utf-8").split())
    for cap in (sheet_module.MAX_SHEET_BYTES, sheet_module.MAX_XLSX_UNPACKED_BYTES):
        assert f"{cap // (1024 * 1024)} MiB" in text
    for cap in (sheet_module.MAX_ROWS, sheet_module.MAX_COLUMNS, sheet_module.MAX_CELL_CHARS):
        assert f"{cap:,}" in text


def test_problems_stay_one_line_even_for_a_file_name_with_line_breaks(tmp_path, settings_):
    path = tmp_path / "evil\nname\x1b[2J.csv"
    path.write_bytes(HEADER + b"bad-2,zeta@1,a tent,a meadow\n")
    (line,) = [str(p) for p in _plan(path, settings_).problems]
    assert line.startswith(f"{tmp_path}/evil\\nname\\x1b[2J.csv:2:style: unknown style 'zeta'")
    assert "\n" not in line and "\x1b" not in line
