"""Both stores delete (withdrawn exports) and ignore keys that are not there."""

from __future__ import annotations

import pytest

from store import open_store


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    out = str(tmp_path / "out") if request.param == "local" else request.getfixturevalue("s3_out")
    return open_store(out)


def test_delete_removes_only_that_key(store):
    store.put("camp/exports/a.webp", b"one")
    store.put("camp/exports/b.webp", b"two")
    store.delete("camp/exports/a.webp")
    store.delete("camp/exports/never-there.webp")
    assert not store.exists("camp/exports/a.webp")
    assert store.list("camp") == ["camp/exports/b.webp"]
    with pytest.raises(ValueError):
        store.delete("../escape")
