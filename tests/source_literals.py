"""The string literals of the project's source, for tests that check one module owns a kind of name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("bench", "exports", "flows", "plan", "qa", "render", "review", "settings", "store")


def _literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string constant that is not a docstring, f-string pieces included."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def literals_matching(root: Path, pattern: re.Pattern[str], owner: str) -> list[str]:
    """``path:line: literal`` for every literal matching ``pattern`` in the source below ``root``,
    except in ``owner`` (a path relative to ``root``: the one place such literals belong)."""
    found = []
    for package in SOURCES:
        for path in sorted((root / package).rglob("*.py")):
            if path.relative_to(root).as_posix().startswith(owner):
                continue
            for line, text in _literals(ast.parse(path.read_text(encoding="utf-8"))):
                if pattern.search(text):
                    found.append(f"{path.relative_to(root)}:{line}: {text!r}")
    return found
