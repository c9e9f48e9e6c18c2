"""Fixtures for the QA tests: a local store and a helper that writes a render into it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.qa.synth import png

from plan.jobs import RenderJob
from store.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "out")


@pytest.fixture
def put_render(store: LocalStore) -> Callable[[RenderJob, np.ndarray], RenderJob]:
    def put(job: RenderJob, pixels: np.ndarray) -> RenderJob:
        store.put(f"renders/{job.key}.png", png(pixels), overwrite=True)
        return job

    return put
