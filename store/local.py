"""Local directory store: temp file + fsync, then ``os.replace`` (overwrite) or ``os.link``
(create-if-absent), so readers never see half a file and a failed write (disk full) leaves
nothing behind."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

from store.base import StoreError, check_key


TEMP_SUFFIX = ".tmp"
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read from /proc where there is one; else set and restored under a lock)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` is exactly ``data`` (its size compared first)."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:  # not there, or not a readable file: written as usual
        return False


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = str(root)
        self._root = Path(root)

    def _path(self, key: str) -> Path:
        return self._root / check_key(key)

    def put(self, key: str, data: bytes, *, content_type: str | None = None, overwrite: bool = False) -> bool:
        """As ``Store.put``; a file that already holds exactly ``data`` is left as it is (an
        overwrite with the same bytes would cost a synced write: every rerun rewrites its
        QA records, manifests and report unchanged)."""
        path = self._path(key)
        if not overwrite and path.exists():
            return False
        if overwrite and _holds(path, data):
            return True
        try:
            return self._write(path, data, overwrite)
        except OSError as exc:  # disk full, read-only, no permission, a file where a folder should be
            raise StoreError(f"cannot write {path}: {exc.strerror or exc} (nothing was left half-written)") from exc

    @staticmethod
    def _write(path: Path, data: bytes, overwrite: bool) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX)
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600: give what the umask says
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

    def clean_temp_files(self) -> list[str]:
        """Remove the temp files of writes that were cut short (the process was killed): those of
        processes no longer running, and any older than a day. Returns their paths."""
        removed = []
        for folder, _dirs, files in os.walk(self._root):
            for name in files:
                if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                    continue
                path = Path(folder) / name
                parts = name[1:-len(TEMP_SUFFIX)].rsplit(".", 2)
                try:
                    stale = not (len(parts) == 3 and parts[1].isdigit() and _running(int(parts[1])))
                    stale = stale or path.stat().st_mtime < time.time() - 86400
                    if stale:
                        path.unlink()
                        removed.append(str(path))
                except FileNotFoundError:
                    continue  # finished (linked and removed) meanwhile
        return removed

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
