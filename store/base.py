"""The artefact store interface: keys are '/'-separated relative paths under one root."""

from __future__ import annotations

import re
from typing import Protocol

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@=+-]{0,199}$")


def check_key(key: str) -> str:
    """Reject keys that could escape the store root: '..', absolute paths, NUL, odd names."""
    parts = key.split("/")
    if not key or any(not _SAFE_PART.match(p) for p in parts):
        raise ValueError(f"store key must be relative parts of letters, digits, '._@=+-' but is {key!r}")
    return key


class StoreError(Exception):
    """The store itself failed (unreachable after retries, disk full, no permission), as opposed
    to a key that is not there. The message names the location and the cause; nothing
    half-written is left, and a rerun resumes once the store works again."""


class Store(Protocol):
    """Where runs keep renders, QA results and exports (local folder or S3)."""

    root: str

    def put(self, key: str, data: bytes, *, content_type: str | None = None, overwrite: bool = False) -> bool:
        """Write ``data`` atomically; returns False (and writes nothing) if ``key`` exists
        and ``overwrite`` is False, so of concurrent writers of one new key exactly one gets
        True. Raises ``StoreError`` when the store cannot be written."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present (withdrawn exports)."""
        ...

    def list(self, prefix: str) -> list[str]: ...

    def location(self, key: str) -> str:
        """A path or URL a person can open."""
        ...

    def clean_temp_files(self) -> list[str]:
        """Remove what writes cut short by a killed process left behind; returns what was removed."""
        ...
