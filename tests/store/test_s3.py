"""S3Store against a real SeaweedFS server on 127.0.0.1."""

from __future__ import annotations

import os

import pytest

from exports.manifest import manifest_row
from exports.placements import load_placements
from exports.stage import export_assets, write_manifests
from store import S3Store, StoreError, open_store
from store.s3 import IMMUTABLE, REWRITTEN, parse_s3_url
from tests.conftest_s3 import CuttingProxy
from tests.exports.conftest import make_item


def _head(store: S3Store, key: str) -> dict:
    return store.client.head_object(Bucket=store.bucket, Key=store.prefix + key)


def test_put_get_exists_list_and_headers(s3_out):
    store = open_store(s3_out)
    assert isinstance(store, S3Store) and store.root == s3_out + "/"
    assert store.put("spring/exports/meta.stories/a.webp", b"webp-bytes", content_type="image/webp")
    assert store.put("spring/exports2/x.png", b"png")
    assert store.put("spring/manifest.json", b"[]", content_type="application/json")
    assert store.get("spring/exports/meta.stories/a.webp") == b"webp-bytes"
    assert store.exists("spring/manifest.json") and not store.exists("spring/nope.json")
    assert store.list("spring/exports") == ["spring/exports/meta.stories/a.webp"]
    assert store.list("") == ["spring/exports/meta.stories/a.webp", "spring/exports2/x.png", "spring/manifest.json"]
    export = _head(store, "spring/exports/meta.stories/a.webp")
    assert export["CacheControl"] == REWRITTEN and export["ContentType"] == "image/webp"
    assert _head(store, "spring/manifest.json")["CacheControl"] == "no-cache"
    assert store.put("renders/0123abcd.png", b"png", content_type="image/png")
    assert _head(store, "renders/0123abcd.png")["CacheControl"] == IMMUTABLE  # content-addressed
    assert _head(store, "spring/exports2/x.png")["ContentType"] == "image/png"  # guessed from the key
    assert store.location("spring/manifest.json") == f"{s3_out}/spring/manifest.json"
    with pytest.raises(FileNotFoundError, match="spring/missing.png"):
        store.get("spring/missing.png")
    with pytest.raises(ValueError, match="store key must be relative parts"):
        store.put("../escape", b"x")


def test_existing_object_is_not_overwritten_unless_asked(s3_out):
    store = open_store(s3_out)
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + "renders/abc.png", Body=b"already here")
    assert store.put("renders/abc.png", b"new bytes") is False
    assert store.get("renders/abc.png") == b"already here"
    assert store.put("renders/abc.png", b"new bytes", overwrite=True) is True
    assert store.get("renders/abc.png") == b"new bytes"


def test_failure_mid_upload_leaves_no_partial_object(s3_out, seaweedfs):
    data = os.urandom(256 * 1024)
    proxy = CuttingProxy(seaweedfs.endpoint, failures=10, budget=64 * 1024)
    try:
        cut = S3Store(s3_out, endpoint_url=proxy.endpoint, max_attempts=2)
        with pytest.raises(StoreError, match="S3 put of s3://.*renders/big.png failed"):
            cut.put("renders/big.png", data)
        assert proxy.cut >= 2  # the first try and the retry were both cut
    finally:
        proxy.close()
    direct = open_store(s3_out)
    assert not direct.exists("renders/big.png") and direct.list("renders") == []


def test_upload_is_retried_after_a_dropped_connection(s3_out, seaweedfs):
    data = os.urandom(256 * 1024)
    proxy = CuttingProxy(seaweedfs.endpoint, failures=1, budget=64 * 1024)
    try:
        assert S3Store(s3_out, endpoint_url=proxy.endpoint, max_attempts=3).put("renders/big.png", data)
        assert proxy.cut == 1
    finally:
        proxy.close()
    assert open_store(s3_out).get("renders/big.png") == data


def test_export_to_s3_in_parallel_then_rerun_uploads_only_the_manifests(s3_out):
    placements = load_placements()
    store = open_store(s3_out)
    items = [make_item(store, ("google.display.upload.300x250", "google.display.upload.728x90"), asset=a)
             for a in ("pack-01", "tent-02")]
    first = export_assets(items, store, placements, formats=("webp", "upload"), workers=2)
    write_manifests(store, "spring", first)
    assert len(first) == 8 and all(r["status"] == "exported" for r in first)
    assert all(_head(store, r["path"])["CacheControl"] == REWRITTEN for r in first)
    manifest = store.get("spring/manifest.json")

    rerun = open_store(s3_out)
    puts: list[str] = []
    rerun.client.meta.events.register("before-parameter-build.s3.PutObject",
                                      lambda params, **_: puts.append(params["Key"]))
    second = export_assets(items, rerun, placements, formats=("webp", "upload"), workers=1)
    write_manifests(rerun, "spring", second)
    assert [r["rewritten"] for r in second] == [""] * 8 and rerun.get("spring/manifest.json") == manifest
    assert list(map(manifest_row, second)) == list(map(manifest_row, first))
    assert sorted(key.removeprefix(rerun.prefix) for key in puts) == ["spring/manifest.csv", "spring/manifest.json"]


@pytest.mark.parametrize(("url", "expected"), [
    ("s3://bucket", ("bucket", "")), ("s3://bucket/", ("bucket", "")), ("s3://b/run/2026/", ("b", "run/2026/")),
])
def test_s3_urls(url, expected):
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["s3://", "http://bucket/x", "s3://bucket/../x"])
def test_bad_s3_urls_are_named(url):
    with pytest.raises(ValueError, match="s3://bucket/prefix|store key must be"):
        parse_s3_url(url)
