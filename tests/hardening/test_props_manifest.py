"""Properties of the manifest CSV writer (exports/manifest.py): spreadsheet-safe, lossless."""

from __future__ import annotations

import csv
import io
import json
import typing

from hypothesis import given
from hypothesis import strategies as st

from exports.manifest import MANIFEST_FIELDS, manifest_csv, manifest_json
from store.documents import ManifestRow
from tests.hardening.conftest import bounded

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
VALUE = st.one_of(st.text(max_size=20), st.text(alphabet="=+-@\t\r\n\"',;|!", max_size=8), st.integers(),
                  st.floats(allow_nan=False), st.booleans())
ROWS = st.lists(st.fixed_dictionaries({}, optional={name: VALUE for name in MANIFEST_FIELDS}), max_size=5)
TEXT = st.one_of(st.text(max_size=20), st.text(alphabet="=+-@\t\r\n\"',;|!", max_size=8))
BY_TYPE = {str: TEXT, int: st.integers(), float: st.floats(allow_nan=False, allow_infinity=False),
           bool: st.booleans(), type(None): st.none()}


def _values(annotation) -> st.SearchStrategy:
    """Every value a ``ManifestRow`` field's type allows (``int | str`` -> ints and texts, ...)."""
    if typing.get_origin(annotation) is dict:  # dict[str, V]: text keys, values of V (nested too)
        return st.dictionaries(st.text(max_size=8), _values(typing.get_args(annotation)[1]), max_size=3)
    return st.one_of(*(BY_TYPE[t] for t in typing.get_args(annotation) or (annotation,)))


FIELDS = ManifestRow.model_fields
TYPED_ROWS = st.lists(st.fixed_dictionaries(
    {name: _values(f.annotation) for name, f in FIELDS.items() if f.is_required()},
    optional={name: _values(f.annotation) for name, f in FIELDS.items() if not f.is_required()}), max_size=5)


@bounded(200)
@given(ROWS)
def test_csv_cells_never_start_a_formula_and_lose_nothing(rows):
    parsed = list(csv.reader(io.StringIO(manifest_csv(rows).decode("utf-8"), newline="")))
    assert parsed[0] == list(MANIFEST_FIELDS) and len(parsed) == len(rows) + 1
    for row, cells in zip(rows, parsed[1:], strict=True):
        for name, cell in zip(MANIFEST_FIELDS, cells, strict=True):
            value = row.get(name, "")
            if isinstance(value, str):
                assert not cell.startswith(FORMULA_START)
                assert cell == ("'" + value if value.startswith(FORMULA_START) else value)
            else:
                assert cell == str(value)


@bounded(100)
@given(TYPED_ROWS)
def test_json_manifest_keeps_values_as_they_are(rows):
    assert json.loads(manifest_json(rows)) == rows
