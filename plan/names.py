"""The one rule for every file or folder name made from an input: asset ids (export file
names), campaign names (from the sheet's file name) and placement ids (export folders).

1-100 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit (no path
separators, no '..' as a path, no spaces or look-alikes), and not a Windows device name
(``CON``, ``NUL``, ``COM1``, ... with or without an extension), so an output folder can be
copied to any file system.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
DEVICE_NAMES = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)


def name_problem(value: str) -> str:
    """Why ``value`` cannot name a file or folder ('' if it can)."""
    if not NAME.fullmatch(value):
        return (f"must be 1-100 ASCII letters, digits, '.', '_' or '-' (not starting with . _ -) "
                f"but is {value!r}")
    if DEVICE_NAMES.fullmatch(value):
        return f"{value!r} is a reserved device name on Windows; choose another"
    return ""
