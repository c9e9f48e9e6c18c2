"""A small campaign project for whole runs in this process (tests/e2e/test_export_identity.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_export_identity import Project


@pytest.fixture
def project(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A campaign folder whose runs read its placements file (``$BRANDBATCH_PLACEMENTS``)."""
    monkeypatch.setenv("BRANDBATCH_PLACEMENTS", str(tmp_path / "placements.yaml"))
    return Project(tmp_path, repo)
