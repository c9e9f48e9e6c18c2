"""Review tests: a queue on a temp SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.review.review_factories import make_jobs, results_for

from review.queue import ReviewQueue


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("BRANDBATCH_REVIEW_DB", raising=False)
    return tmp_path / "out"


@pytest.fixture
def queue(out: Path) -> Iterator[ReviewQueue]:
    q = ReviewQueue.for_out(out)
    yield q
    q.close()


@pytest.fixture
def enqueue(queue: ReviewQueue) -> Callable:
    def add(asset_id: str, verdict: str = "review", variant: int = 0, **kw):
        jobs = make_jobs(asset_id, variant, **kw)
        return queue.enqueue(jobs, results_for(jobs, verdict))
    return add
