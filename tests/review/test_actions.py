from __future__ import annotations

from tests.review.review_factories import make_jobs, results_for

from review.actions import queue_rerolls
from review.queue import ReviewQueue


def test_a_rendered_and_checked_reroll_is_queued_again(queue: ReviewQueue) -> None:
    jobs = make_jobs("tent-02", aspects=("1:1",))
    item = queue.enqueue(jobs, results_for(jobs))
    (job,) = queue.reroll(item.id, "dana", expected_version=1, reason="composition")
    (back,) = queue_rerolls(queue, [job], results_for([job]), [job])
    (queued_job,) = back.jobs.values()
    assert (back.state, back.reroll, queued_job.reroll) == ("queued", 1, 1)
    assert queued_job.seed != jobs[0].seed and back.qa["1:1"].job_key == job.key
    assert [(d.reviewer, d.decision, d.reason) for d in queue.decisions(item.id)] == [
        ("dana", "reroll", "composition"), ("brandbatch", "requeue", "rerolled")]


def test_a_reroll_without_a_qa_result_queues_for_a_designer(queue: ReviewQueue) -> None:
    jobs = make_jobs("tent-02", aspects=("1:1",))
    item = queue.enqueue(jobs, results_for(jobs, "pass"))
    (job,) = queue.reroll(item.id, "dana", expected_version=item.version)
    (back,) = queue_rerolls(queue, [job], {}, [job])
    assert back.state == "queued"  # fail closed: no QA result, a designer looks at it


def test_a_reroll_that_did_not_render_keeps_waiting(queue: ReviewQueue) -> None:
    jobs = make_jobs("tent-02", aspects=("1:1",))
    item = queue.enqueue(jobs, results_for(jobs))
    rerolled = queue.reroll(item.id, "dana", expected_version=1)
    assert queue_rerolls(queue, [], {}, rerolled) == []
    waiting = queue.item(item.id)
    assert (waiting.state, waiting.reroll) == ("reroll_requested", 0)
    assert [j.reroll for j in queue.pending_rerolls(item.campaign)] == [1]  # still to do
