"""Problems found while loading inputs. Each one names where it is and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Line breaks and other control characters are shown escaped, so one problem is always one line
# (``validate`` prints one line per problem; a cell value cannot forge or hide a line).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


# One machine code per kind of problem (metrics and tests use these, never the message text).
PROBLEM_CODES: dict[str, str] = {
    # files
    "file_not_found": "an input file does not exist",
    "file_unreadable": "an input file cannot be read",
    "file_too_large": "an input file (or what it unpacks to) is over its size cap",
    "unsupported_format": "a sheet that is not .csv or .xlsx",
    "bad_file_name": "a style file not named v<N>.yaml",
    "not_utf8": "text that is not UTF-8",
    "bad_csv": "a CSV file that does not parse",
    "bad_xlsx": "an XLSX workbook that cannot be read",
    "unsafe_xml": "an XLSX part that declares a DTD or entities",
    "bad_yaml": "YAML that does not parse, or not the shape expected",
    "yaml_too_big": "YAML that expands or nests beyond the caps",
    # sheets
    "empty_sheet": "a sheet without a header row",
    "too_many_rows": "a sheet over the row cap",
    "too_many_columns": "a sheet over the column cap",
    "bad_header": "a column header that is not a valid name",
    "duplicate_column": "a column header that appears twice",
    "missing_column": "a required column that is missing",
    "bad_cell": "a cell value that is refused (formula, control characters, no header, ...)",
    "cell_too_long": "a cell value over the length cap",
    "empty_value": "a required value that is empty",
    # rows
    "bad_asset_id": "an asset id that cannot name files",
    "duplicate_asset_id": "an asset id used by an earlier row",
    "file_name_clash": "export file names of two rows that differ only in case",
    "bad_variants": "a variants count that is not a whole number in range",
    "unknown_placement": "a placement id that no preset has",
    "bad_locale": "a locale that is not a BCP 47 tag",
    "bad_logo": "a logo path that is not an image file in the sheet's folder",
    "bad_upload": "an uploaded image (logo, packshot, mask, reference) that is not a safe, readable image in the sheet's folder",
    "bad_reference": "a reference image the row's style cannot use (no reference_strength, ip_adapter or structure; a packshot row)",
    "blocked_mark": "an uploaded image that matches one of the brand's blocked marks",
    "bad_product": "a packshot that cannot be placed (no alpha or mask, no product placement in the style)",
    "banned_term": "a banned term in a cell or the rendered prompt",
    "bad_prompt": "a prompt template that fails for the row",
    "prompt_too_long": "a prompt longer than the text encoder reads",
    "text_unrenderable": "overlay text with glyphs no font of the style has",
    # styles
    "bad_style_ref": "a style cell that is not name@version",
    "unknown_style": "a style name that is not in the library",
    "unknown_style_version": "a style version that does not exist",
    "invalid_style": "a style file that fails validation",
    "unpinned_model": "an approved style whose model revision is not pinned",
    "model_family_mismatch": "--model names a model of another family than the row's style",
    "draft_style": "a draft style in a production run",
    "deprecated_style": "a style version past its deprecation date",
    # placements
    "bad_placements": "a placements file entry that fails validation",
}


@dataclass(frozen=True)
class Problem:
    """One problem in an input file: ``FILE:ROW:COLUMN: message`` (row/column optional);
    ``code``: what kind of problem (one of ``PROBLEM_CODES``)."""

    file: str
    message: str
    row: int | None = None
    column: str | None = None
    code: str = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.code not in PROBLEM_CODES:
            raise ValueError(f"problem code must be one of {', '.join(PROBLEM_CODES)} but is {self.code!r}")

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(str(self.row))
        if self.column is not None:
            where.append(self.column)
        return one_line(f"{':'.join(where)}: {self.message}")


class InputError(ValueError):
    """Invalid input; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def closest(value: str, choices: Iterable[str]) -> list[str]:
    """Up to three of ``choices`` closest to ``value`` (difflib), best first: for "did you mean"."""
    return difflib.get_close_matches(value, list(choices), n=3, cutoff=0.6)


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'a' or 'b'?)`` naming the choices closest to ``value``, or ""."""
    close = closest(value, choices)
    if not close:
        return ""
    return f" (did you mean {' or '.join(map(repr, close))}?)"
