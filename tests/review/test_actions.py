from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.review.review_factories import make_jobs, results_for

from review.actions import reroll_and_render, styles_qa
from review.queue import ReviewQueue
from store import LocalStore

REPO = Path(__file__).resolve().parents[2]


def test_reroll_and_render_brings_new_qad_renders_back(out: Path, queue: ReviewQueue) -> None:
    store = LocalStore(out)
    jobs = make_jobs("tent-02", aspects=("1:1",))
    item = queue.enqueue(jobs, results_for(jobs))
    (back,) = reroll_and_render(queue, store, item.id, "dana", expected_version=1, reason="composition",
                                check=styles_qa(store, REPO / "styles"))
    (job,) = back.jobs.values()
    assert (back.state, back.reroll, job.reroll) == ("queued", 1, 1)
    assert job.seed != jobs[0].seed and store.exists(f"renders/{job.key}.png")
    assert back.qa["1:1"].job_key == job.key and store.exists(f"qa/{job.key}.json")  # QA'd with acme@2
    assert [(d.reviewer, d.decision, d.reason) for d in queue.decisions(item.id)] == [
        ("dana", "reroll", "composition"), ("brandbatch", "requeue", "rerolled")]


def test_a_reroll_that_fails_to_render_keeps_waiting(out: Path, queue: ReviewQueue) -> None:
    jobs = [dataclasses.replace(j, model_id="brandbatch/tiny-unknown") for j in make_jobs("tent-02", aspects=("1:1",))]
    item = queue.enqueue(jobs, results_for(jobs))
    assert reroll_and_render(queue, LocalStore(out), item.id, "dana", expected_version=1) == []
    waiting = queue.item(item.id)
    assert (waiting.state, waiting.reroll) == ("reroll_requested", 0)
    assert [j.reroll for j in queue.pending_rerolls(item.campaign)] == [1]  # still to do
