"""A short, bounded fuzz of the sheet and style loaders: whatever the bytes, the answer is a
value or an InputError whose problems are single lines; never a crash, a hang or a leak.

Derandomized and bounded (see conftest.bounded); BRANDBATCH_FUZZ_EXAMPLES=5000 runs longer.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plan.errors import InputError
from plan.planner import plan_campaign
from plan.sheet import Sheet, read_sheet
from plan.styles import Style, load_style_file
from tests.hardening.conftest import bounded


def _one_line(problems) -> bool:
    return all("\n" not in str(p) and "\r" not in str(p) for p in problems)


def _read(path: Path) -> Sheet | None:
    try:
        return read_sheet(path)
    except InputError as exc:
        assert exc.problems and _one_line(exc.problems)
        return None


CSV_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b"asset_id", b"style", b"product", b"scene", b",", b"\n", b"\r\n", b'"', b"\xef\xbb\xbf",
                              b"\xe9", b"\x00", b"acme@2", b"a tent", b"..", b"/", b"=1+1", b"\xff\xfe", b" "]),
             max_size=40).map(b"".join).map(lambda b: b"asset_id,style,product,scene\n" + b),
)


@bounded(300)
@given(data=CSV_BYTES)
def test_fuzz_csv_sheets(tmp_path, settings_, data):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    sheet = _read(path)
    if sheet is not None:
        plan = plan_campaign(sheet, settings_)
        assert _one_line(plan.problems)
        planned = {r.row for r in plan.rows}
        assert planned.isdisjoint({p.row for p in plan.problems})


def deterministic_workbook() -> bytes:
    """A small valid XLSX, byte-identical on every run (fixed zip times and document dates), so
    the derandomized fuzz damages the same bytes every time."""
    book = openpyxl.Workbook()
    for row in (["asset_id", "style", "product", "scene"], ["ok-1", "acme@2", "a tent", "a meadow"]):
        book.active.append(row)
    saved = io.BytesIO()
    book.save(saved)
    packed = io.BytesIO()
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(packed, "w") as target:
        for name in source.namelist():
            data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2026-01-01T00:00:00Z", source.read(name))
            target.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return packed.getvalue()


@pytest.fixture(scope="module")
def workbook_bytes() -> bytes:
    return deterministic_workbook()


def test_the_fuzzed_workbook_is_deterministic_and_valid(tmp_path, workbook_bytes):
    assert deterministic_workbook() == workbook_bytes
    path = tmp_path / "ok.xlsx"
    path.write_bytes(workbook_bytes)
    assert [r.cells["asset_id"] for r in read_sheet(path).rows] == ["ok-1"]


@bounded(150, deadline_ms=5000)
@given(flips=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 2**20)))
def test_fuzz_damaged_xlsx(tmp_path, workbook_bytes, flips, cut):
    data = bytearray(workbook_bytes)
    for offset, value in flips:
        data[offset % len(data)] = value
    path = tmp_path / "f.xlsx"
    path.write_bytes(bytes(data[: cut % len(data)] if cut is not None else data))
    _read(path)


PARTS = st.sampled_from(["xl/worksheets/sheet1.xml", "xl/workbook.xml", "[Content_Types].xml",
                         "xl/_rels/workbook.xml.rels", "xl/styles.xml"])
XMLISH = st.lists(st.sampled_from(["<", ">", "</", "/>", "<!DOCTYPE x [", "]>", "<!ENTITY a 'b'>", "&a;", "<?xml ?>",
                                   "<row r='9'>", "<c r='A9'>", "<v>", "1", "x", "\"", "=", " ", "<sheetData>",
                                   "<worksheet>"]), max_size=30).map("".join)


@bounded(150, deadline_ms=5000)
@given(part=PARTS, text=XMLISH)
def test_fuzz_xlsx_parts(tmp_path, workbook_bytes, part, text):
    source = zipfile.ZipFile(io.BytesIO(workbook_bytes))
    path = tmp_path / "f.xlsx"
    with zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            target.writestr(name, text.encode() if name == part else source.read(name))
    _read(path)


STYLE_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["name: demo\n", "version: 1\n", "owner: me\n", "status: approved\n", "status: draft\n",
                              "model: {id: m}\n", "prompt_template: a.j2\n", "aspect_ratios: ['1:1']\n",
                              "placements: [p]\n", "&a ", "*a", "[", "]", "{", "}", ": ", "- ", "!!python/name:os.sep ",
                              "!!binary ", "<<: *a\n", "qa: {min_clip_score: 2}\n", "\t", "\n", "'", '"', "%YAML 1.1\n",
                              "---\n", "? ", "~", "1e9999", ".nan", "2026-02-30"]),
             max_size=25).map("".join),
)


@bounded(300)
@given(text=STYLE_TEXT)
def test_fuzz_style_files(tmp_path, text):
    path = tmp_path / "demo" / "v1.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert isinstance(load_style_file(path), Style)
    except InputError as exc:
        assert exc.problems and _one_line(exc.problems)
