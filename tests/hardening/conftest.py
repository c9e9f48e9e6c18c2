"""Shared pieces for the hardening tests: plan settings over the repo's styles, sheet writers,
and the bounded, derandomized hypothesis settings CI runs with."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from plan.planner import PlanSettings
from plan.tokens import count_tokens

# Fixed example counts and deadlines, derandomized (same examples on every run, no example
# database): CI stays stable and bounded. BRANDBATCH_FUZZ_EXAMPLES=5000 runs a longer fuzz locally.
_EXAMPLES = int(os.environ.get("BRANDBATCH_FUZZ_EXAMPLES", "0"))


def bounded(examples: int, deadline_ms: int = 5000) -> settings:
    return settings(max_examples=_EXAMPLES or examples, deadline=deadline_ms, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


PLACEMENTS = {
    "meta.feed.square": (1080, 1080),
    "meta.stories": (1080, 1920),
    "google.display.upload.300x250": (300, 250),
}


@pytest.fixture
def settings_(repo: Path) -> PlanSettings:
    count_tokens("warm up")  # the first call builds the CLIP tokenizer (seconds): not inside a deadline
    return PlanSettings(styles_dir=repo / "styles", templates_dir=repo / "templates" / "prompts",
                        placements=PLACEMENTS, today=dt.date(2026, 11, 23))


@pytest.fixture
def write_bytes(tmp_path: Path):
    def write(data: bytes, name: str = "sheet.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write
