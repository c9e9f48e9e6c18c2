"""Local directory store: temp file + fsync, then ``os.replace`` (overwrite) or ``os.link``
(create-if-absent), so readers never see half a file and a failed write (disk full) leaves
nothing behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from store.base import StoreError, check_key


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = str(root)
        self._root = Path(root)

    def _path(self, key: str) -> Path:
        return self._root / check_key(key)

    def put(self, key: str, data: bytes, *, content_type: str | None = None, overwrite: bool = False) -> bool:
        path = self._path(key)
        if not overwrite and path.exists():
            return False
        try:
            return self._write(path, data, overwrite)
        except OSError as exc:  # disk full, read-only, no permission, a file where a folder should be
            raise StoreError(f"cannot write {path}: {exc.strerror or exc} (nothing was left half-written)") from exc

    @staticmethod
    def _write(path: Path, data: bytes, overwrite: bool) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(tmp, path)
                return True
            try:
                os.link(tmp, path)  # atomic create-if-absent: of concurrent writers, one wins
            except FileExistsError:
                return False
            return True
        finally:
            if os.path.exists(tmp):  # a failed write, or the name linked above
                os.unlink(tmp)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except NotADirectoryError:  # a file where a folder of the key should be: the key is not there
            raise FileNotFoundError(self.location(key)) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self._root / prefix if prefix else self._root
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self._root).as_posix()
            for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

    def location(self, key: str) -> str:
        return str(self._path(key))
