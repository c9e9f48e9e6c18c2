"""Artefact stores. ``open_store`` picks the backend from the ``--out`` value."""

from __future__ import annotations

from store.base import Store, StoreError, check_key
from store.local import LocalStore
from store.s3 import S3Store


def open_store(out: str) -> Store:
    """``s3://bucket/prefix`` -> S3Store (endpoint from $BRANDBATCH_S3_ENDPOINT or
    $AWS_ENDPOINT_URL); anything else is a local directory."""
    if out.startswith("s3://"):
        return S3Store(out)
    return LocalStore(out)


__all__ = ["LocalStore", "S3Store", "Store", "StoreError", "check_key", "open_store"]
