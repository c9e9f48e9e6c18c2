"""open_store picks the backend; LocalStore is atomic and never overwrites unless asked."""

from __future__ import annotations

from store import LocalStore, S3Store, open_store


def test_open_store_picks_the_backend(tmp_path, monkeypatch):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    monkeypatch.setenv("BRANDBATCH_S3_ENDPOINT", "http://127.0.0.1:1")
    store = open_store("s3://bucket/prefix")
    assert isinstance(store, S3Store) and store.endpoint_url == "http://127.0.0.1:1"
    monkeypatch.delenv("BRANDBATCH_S3_ENDPOINT")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    assert open_store("s3://bucket").endpoint_url == "http://127.0.0.1:2"


def test_local_store_put_get_list(tmp_path):
    store = open_store(str(tmp_path))
    assert store.put("c/exports/p/a.webp", b"one")
    assert store.put("c/exports/p/a.webp", b"two") is False and store.get("c/exports/p/a.webp") == b"one"
    assert store.put("c/exports/p/a.webp", b"two", overwrite=True) and store.get("c/exports/p/a.webp") == b"two"
    assert store.list("c") == ["c/exports/p/a.webp"] and store.list("nope") == []
    assert not list(tmp_path.rglob("*.tmp"))


def test_an_overwrite_with_the_bytes_already_there_writes_nothing(tmp_path):
    """Reruns put their QA records, manifests and report again unchanged: no synced write then
    (the file keeps its inode and time); any other bytes, even of the same size, replace it."""
    import os

    store = open_store(str(tmp_path))
    path = tmp_path / "c" / "manifest.json"
    assert store.put("c/manifest.json", b"[1, 2]\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = path.stat()
    assert store.put("c/manifest.json", b"[1, 2]\n", overwrite=True)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, 1_000_000_000)
    for other in (b"[1, 3]\n", b"[1, 3]\n\n", b""):
        assert store.put("c/manifest.json", other, overwrite=True) and store.get("c/manifest.json") == other
    assert path.stat().st_ino != before.st_ino and not list(tmp_path.rglob("*.tmp"))
