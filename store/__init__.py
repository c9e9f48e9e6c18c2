"""Artefact stores. ``open_store`` picks the backend from the ``--out`` value."""

from __future__ import annotations

from store.base import Store, check_key
from store.local import LocalStore


def open_store(out: str) -> Store:
    """A store for ``--out``: a local directory path."""
    return LocalStore(out)


__all__ = ["LocalStore", "Store", "check_key", "open_store"]
