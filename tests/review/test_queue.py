from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tests.review.review_factories import BACKENDS, CAMPAIGN, make_jobs, results_for

from plan.planner import CampaignPlan
from review.actions import queue_for_review
from review.approvals import auto_approval
from review.queue import Conflict, InvalidDecision, ItemNotFound, ReviewError, ReviewQueue, database_url, rerolled_jobs


@pytest.fixture(params=BACKENDS)
def review_db(request: pytest.FixtureRequest) -> str:
    """Every queue test here runs on SQLite and on PostgreSQL."""
    return request.param


def test_enqueue_is_idempotent_and_keeps_decisions(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    assert (item.state, item.version, item.verdict, item.reasons) == ("queued", 1, "review", ["sampled"])
    assert enqueue("tent-02") == item
    approved = queue.decide(item.id, "dana", "approve", expected_version=1)
    assert (approved.state, approved.version, approved.approved_by) == ("approved", 2, "dana")
    assert approved.approval_id and approved.approval_id.startswith("rev-")
    again = enqueue("tent-02")  # a campaign rerun with the same renders
    assert (again.state, again.version, again.approval_id) == ("approved", 2, approved.approval_id)
    assert [d.decision for d in queue.decisions(item.id)] == ["approve"]
    assert len(queue.items(CAMPAIGN)) == 1


def test_pass_is_approved_by_qa_auto_and_fail_rejected(queue: ReviewQueue, enqueue) -> None:
    passed = enqueue("trail-pack-01", "pass")
    expected = auto_approval(CAMPAIGN, "trail-pack-01", 0, list(passed.job_keys.values()), "pass")
    assert (passed.state, passed.approved_by, passed.approval_id) == ("approved", "qa-auto", expected.approval_id)
    failed = enqueue("bottle-03", "fail")
    assert failed.state == "rejected"
    assert [(d.reviewer, d.decision, d.reason) for d in queue.decisions(failed.id)] == [("qa-auto", "reject", "qa_fail")]
    with pytest.raises(Conflict, match="failed QA"):
        queue.decide(failed.id, "dana", "approve", expected_version=failed.version)
    assert [a.asset_id for a in queue.approved(CAMPAIGN)] == ["trail-pack-01"]


def test_stale_version_is_a_conflict(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    queue.decide(item.id, "dana", "reject", "off_brand", "too dark", expected_version=1)
    with pytest.raises(Conflict, match="version 2, not 1") as caught:
        queue.decide(item.id, "lee", "approve", expected_version=1)
    assert caught.value.current is not None and caught.value.current.state == "rejected"
    record = queue.decisions(item.id)[-1]
    assert (record.reviewer, record.decision, record.reason, record.note) == ("dana", "reject", "off_brand", "too dark")
    assert record.decided_at.tzinfo is not None and record.job_keys == item.job_keys


def test_concurrent_decisions_one_wins(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def decide(name: str) -> None:
        barrier.wait()
        try:
            queue.decide(item.id, name, "approve", expected_version=item.version)
            outcomes.append("won")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=decide, args=(f"reviewer{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    assert len(queue.decisions(item.id)) == 1
    assert queue.item(item.id).version == 2


def test_decisions_are_append_only(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    queue.decide(item.id, "dana", "approve", expected_version=1)
    first = queue.decisions(item.id)
    queue.decide(item.id, "lee", "reject", "off_brand", "logo cut off", expected_version=2)
    jobs = queue.reroll(item.id, "dana", expected_version=3, reason="composition")
    queue.enqueue(jobs, results_for(jobs))
    history = queue.decisions(item.id)
    assert history[:1] == first  # earlier rows are never rewritten
    assert [(d.reviewer, d.decision, d.item_version) for d in history] == [
        ("dana", "approve", 2), ("lee", "reject", 3), ("dana", "reroll", 4), ("brandbatch", "requeue", 5)]
    assert history[0].approval_id and history[1].approval_id is None
    assert [d.id for d in history] == sorted(d.id for d in history)


def test_reroll_returns_new_jobs_and_new_renders_requeue(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    jobs = queue.reroll(item.id, "dana", expected_version=1, reason="composition", note="crop the tent")
    old = item.jobs
    assert sorted(j.aspect for j in jobs) == sorted(old)
    for job in jobs:
        assert job.reroll == 1 and job.seed != old[job.aspect].seed and job.key != old[job.aspect].key
    assert jobs == rerolled_jobs([job for _aspect, job in sorted(old.items())])
    assert queue.item(item.id).state == "reroll_requested"
    assert queue.pending_rerolls(CAMPAIGN) == jobs
    with pytest.raises(Conflict, match="waits for its reroll"):
        queue.decide(item.id, "lee", "approve", expected_version=2)
    assert enqueue("tent-02").state == "reroll_requested"  # a rerun of the plan changes nothing

    back = queue.enqueue(jobs, results_for(jobs, "pass"))
    assert (back.state, back.reroll, back.version) == ("queued", 1, 3)  # designers see rerolls, even passing
    assert back.seeds == {j.aspect: j.seed for j in jobs}
    assert [(d.reviewer, d.decision, d.reason) for d in queue.decisions(item.id)][-1] == ("brandbatch", "requeue", "rerolled")
    assert enqueue("tent-02").reroll == 1  # planned (reroll 0) renders never undo a reroll
    queue.decide(item.id, "dana", "approve", expected_version=3)
    (approved,) = queue.approved(CAMPAIGN)
    assert approved.job_keys == {j.aspect: j.key for j in jobs} and approved.approved_by == "dana"


def test_changed_inputs_requeue_even_after_reroll(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    queue.decide(item.id, "dana", "approve", expected_version=1)
    changed = enqueue("tent-02", prompt="a three person camping tent")
    assert (changed.state, changed.approval_id, changed.prompt) == ("queued", None, "a three person camping tent")
    assert queue.decisions(item.id)[-1].reason == "inputs_changed"
    assert queue.approved(CAMPAIGN) == []


@pytest.mark.parametrize(("decision", "reason", "note", "message"), [
    ("ship", None, None, "decision must be one of approve, reject, reroll but is 'ship'"),
    ("reject", None, None, "a rejection needs a reason, one of off_brand"),
    ("approve", "ugly", None, "reason must be one of off_brand, .* but is 'ugly'"),
    ("approve", None, "x" * 2001, "note is 2001 characters; at most 2000"),
])
def test_bad_decisions_say_what_is_allowed(queue: ReviewQueue, enqueue, decision, reason, note, message) -> None:
    item = enqueue("tent-02")
    with pytest.raises(InvalidDecision, match=message):
        queue.decide(item.id, "dana", decision, reason, note, expected_version=1)
    assert queue.item(item.id).version == 1 and queue.decisions(item.id) == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "ABCDEF" * 6, "0" * 31, "0" * 32 + "/..", ""])
def test_bad_item_ids_are_not_found(queue: ReviewQueue, bad: str) -> None:
    with pytest.raises(ItemNotFound):
        queue.item(bad)
    with pytest.raises(ItemNotFound):
        queue.decide(bad, "dana", "approve", expected_version=1)


def test_restart_loses_nothing(out: Path, enqueue, queue: ReviewQueue) -> None:
    item = enqueue("tent-02")
    queue.decide(item.id, "dana", "reject", "artifact", expected_version=1)
    secret = queue.secret()
    queue.close()
    reopened = ReviewQueue.for_out(out)
    try:
        assert reopened.item(item.id).state == "rejected"
        assert [d.reviewer for d in reopened.decisions(item.id)] == ["dana"]
        assert reopened.secret() == secret
        assert reopened.campaigns() == {CAMPAIGN: {"queued": 0, "approved": 0, "rejected": 1, "reroll_requested": 0}}
    finally:
        reopened.close()


def test_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRANDBATCH_REVIEW_DB", raising=False)
    assert database_url(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'review.sqlite3'}"
    with pytest.raises(ReviewError, match="set BRANDBATCH_REVIEW_DB"):
        database_url("s3://bucket/prefix")
    monkeypatch.setenv("BRANDBATCH_REVIEW_DB", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert database_url("s3://bucket/prefix").endswith("elsewhere.db")


def test_queue_for_review_queues_the_plan(out: Path) -> None:
    review, passed, failed, broken = (make_jobs(a) for a in ("tent-02", "trail-pack-01", "bottle-03", "jacket-04"))
    plan = CampaignPlan(campaign=CAMPAIGN, sheet=Path("campaigns/spring-launch.csv"),
                        jobs=review + passed + failed + broken)
    results = {**results_for(review), **results_for(passed, "pass"), **results_for(failed, "fail"),
               **results_for(broken[:1], "pass")}  # jacket-04's 9:16 render failed: not queued
    queue = ReviewQueue.for_out(out)
    try:
        assert queue_for_review(queue, plan, results) == 1
        assert queue_for_review(queue, plan, results) == 1  # idempotent
        states = {i.asset_id: i.state for i in queue.items(CAMPAIGN)}
        assert states == {"tent-02": "queued", "trail-pack-01": "approved", "bottle-03": "rejected"}
    finally:
        queue.close()
