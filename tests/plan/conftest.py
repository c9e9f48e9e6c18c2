from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from plan.planner import PlanSettings

PLACEMENTS = {
    "meta.feed.square": (1080, 1080),
    "meta.feed.portrait": (1080, 1350),
    "meta.stories": (1080, 1920),
    "google.display.upload.300x250": (300, 250),
    "linkedin.single_image.landscape": (1200, 628),
}


@pytest.fixture
def settings(repo: Path) -> PlanSettings:
    return PlanSettings(
        styles_dir=repo / "styles",
        templates_dir=repo / "templates" / "prompts",
        placements=PLACEMENTS,
        today=dt.date(2026, 11, 23),
    )


@pytest.fixture
def write_sheet(tmp_path: Path):
    def write(text: str, name: str = "sheet.csv") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
