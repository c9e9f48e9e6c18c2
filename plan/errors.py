"""Problems found while loading inputs. Each one names where it is and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass


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
        return f"{':'.join(where)}: {self.message}"


class InputError(ValueError):
    """Invalid input; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
