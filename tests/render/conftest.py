"""Fixtures for the render tests."""

from __future__ import annotations

import pytest
from tests.render.jobs import make_job

from plan.jobs import RenderJob


@pytest.fixture
def mixed_jobs() -> list[RenderJob]:
    """SD and SDXL jobs in three groups (two sizes, two schedulers)."""
    return ([make_job(i) for i in range(5)] + [make_job(i, width=48, height=80, scheduler="euler_a") for i in range(5, 7)]
            + [make_job(i, "sdxl") for i in range(7, 10)])
