"""Problems found while loading inputs. Each one names where it is and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Line breaks and other control characters are shown escaped, so one problem is always one line
# (``validate`` prints one line per problem; a cell value cannot forge or hide a line).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


@dataclass(frozen=True)
class Problem:
    """One problem in an input file: ``FILE:ROW:COLUMN: message`` (row/column optional)."""

    file: str
    message: str
    row: int | None = None
    column: str | None = None

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


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'a' or 'b'?)`` naming the choices closest to ``value`` (difflib), or ""."""
    close = difflib.get_close_matches(value, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {' or '.join(map(repr, close))}?)"
