"""Decisions per placement and copy edits in the review queue: audited, logged in the decision
log (so ``review --rebuild`` restores them), carried to export by ``approved()``, cleared
(rejections) when new renders arrive; a queue at the previous schema (0002) upgrades in place."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from tests.review.review_factories import BACKENDS, CAMPAIGN, make_jobs, results_for

from review.migrations import alembic_config, head
from review.queue import PLACEMENT_REASONS, Conflict, InvalidDecision, ReviewQueue, item_id_for
from review.rebuild import rebuild_queue


@pytest.fixture(params=BACKENDS)
def review_db(request: pytest.FixtureRequest) -> str:
    return request.param


def test_a_placement_rejected_with_a_reason_is_audited_and_reaches_export(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    done = queue.reject_placement(item.id, "dana", "ig-story", "text_too_small", "headline 3 px", expected_version=1)
    assert (done.state, done.version) == ("queued", 2)  # the creative still waits for its decision
    assert done.rejected_placements["ig-story"]["reason"] == "text_too_small"
    assert done.rejected_placements["ig-story"]["by"] == "dana"
    record = queue.decisions(item.id)[-1]
    assert (record.decision, record.placement, record.reason, record.note) == \
        ("reject_placement", "ig-story", "text_too_small", "headline 3 px")
    approved = queue.decide(item.id, "dana", "approve", expected_version=2)
    (variant,) = queue.approved(CAMPAIGN)
    assert set(variant.rejected_placements) == {"ig-story"} and approved.rejected_placements == done.rejected_placements
    restored = queue.restore_placement(item.id, "lee", "ig-story", expected_version=3)
    assert restored.rejected_placements == {} and restored.state == "approved"
    assert queue.decisions(item.id)[-1].decision == "restore_placement"


@pytest.mark.parametrize(("placement", "reason", "note", "error"), [
    ("ig-story", "ugly", None, "one of text_too_small"),
    ("ig-story", None, None, "one of text_too_small"),
    ("ig-story", "other", "  ", "needs a note"),
    ("../etc", "bad_crop", None, "placement must be a placement id"),
    ("ig-story", "bad_crop", "x" * 2001, "at most 2000"),
])
def test_a_placement_rejection_needs_a_known_reason(queue: ReviewQueue, enqueue, placement, reason, note,
                                                    error) -> None:
    item = enqueue("tent-02")
    with pytest.raises(InvalidDecision, match=error):
        queue.reject_placement(item.id, "dana", placement, reason, note, expected_version=1)
    assert queue.item(item.id).version == 1 and queue.decisions(item.id) == []
    assert "other" in PLACEMENT_REASONS


def test_a_placement_decision_on_a_stale_version_is_a_conflict(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    queue.edit_copy(item.id, "lee", "headline", "Old", "New", expected_version=1)
    with pytest.raises(Conflict, match="lee edited the copy of it at"):
        queue.reject_placement(item.id, "dana", "ig-story", "bad_crop", expected_version=1)
    with pytest.raises(InvalidDecision, match="is not rejected"):
        queue.restore_placement(item.id, "dana", "ig-story", expected_version=2)


def test_a_copy_edit_is_an_override_with_before_after_and_who(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    one = queue.edit_copy(item.id, "dana", "headline", "Go outside", "Go  outside\nnow", expected_version=1)
    assert one.overrides["headline"]["before"] == "Go outside"
    assert one.overrides["headline"]["after"] == "Go outside now"  # one line, as the overlay draws it
    two = queue.edit_copy(item.id, "lee", "headline", "Go outside now", "Out now", expected_version=2)
    assert (two.overrides["headline"]["before"], two.overrides["headline"]["after"],
            two.overrides["headline"]["by"]) == ("Go outside", "Out now", "lee")  # before: still the sheet's
    changes = [d.copy_change for d in queue.decisions(item.id)]
    assert changes == [{"field": "headline", "before": "Go outside", "after": "Go outside now"},
                       {"field": "headline", "before": "Go outside now", "after": "Out now"}]
    back = queue.edit_copy(item.id, "dana", "headline", "Out now", "Go outside", expected_version=3)
    assert back.overrides == {}  # the sheet's text again: no override left
    with pytest.raises(InvalidDecision, match="field must be one of headline, cta, alt_text"):
        queue.edit_copy(item.id, "dana", "prompt", "a", "b", expected_version=4)
    with pytest.raises(InvalidDecision, match="at most 1000"):
        queue.edit_copy(item.id, "dana", "cta", "Buy", "x" * 1001, expected_version=4)
    with pytest.raises(InvalidDecision, match="already"):
        queue.edit_copy(item.id, "dana", "cta", "Buy", "Buy", expected_version=4)


def test_new_renders_clear_placement_rejections_but_keep_copy_edits(queue: ReviewQueue, enqueue) -> None:
    item = enqueue("tent-02")
    queue.reject_placement(item.id, "dana", "ig-story", "bad_crop", expected_version=1)
    queue.edit_copy(item.id, "dana", "cta", "Shop", "Shop now", expected_version=2)
    jobs = queue.reroll(item.id, "dana", expected_version=3)
    again = queue.enqueue(jobs, results_for(jobs))
    assert again.rejected_placements == {}  # the crop was judged on the old pixels
    assert again.overrides["cta"]["after"] == "Shop now"


def test_rebuild_restores_placement_rejections_and_copy_edits(out: Path, queue: ReviewQueue, enqueue,
                                                              review_db: str) -> None:
    if review_db != "sqlite":
        pytest.skip("a lost SQLite file is the case rebuilt here; the log is the same on both")
    item = enqueue("tent-02")
    queue.reject_placement(item.id, "dana", "ig-story", "logo_illegible", "tiny", expected_version=1)
    queue.edit_copy(item.id, "dana", "headline", "Old", "New", expected_version=2)
    before, history = queue.item(item.id), queue.decisions(item.id)
    queue.close()
    (out / "review.sqlite3").unlink()
    rebuild_queue(str(out))
    again = ReviewQueue.for_out(out)
    try:
        after = again.item(item.id)
        assert (after.rejected_placements, after.overrides, after.version) == \
            (before.rejected_placements, before.overrides, before.version)
        assert [(d.decision, d.placement, d.reason, d.note, d.copy_change) for d in again.decisions(item.id)] == \
            [(d.decision, d.placement, d.reason, d.note, d.copy_change) for d in history]
    finally:
        again.close()


def test_a_queue_at_the_previous_schema_upgrades_in_place(review_db: str, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if review_db == "postgresql" else \
        f"sqlite:///{tmp_path / 'review.sqlite3'}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0002")
            conn.execute(sa.text(
                "INSERT INTO review_items (id, campaign, asset_id, variant, row, style, style_version, prompt, "
                "reroll, planned, jobs, verdict, qa, state, approval_id, approved_by, version, updated_at) VALUES "
                "(:id, :c, 'tent-02', 0, 2, 'acme', 2, 'p', 0, 'x', :jobs, 'review', '{}', 'approved', 'rev-1', "
                "'dana', 2, '2026-11-30 10:00:00+00:00')"),
                {"id": item_id_for(CAMPAIGN, "tent-02", 0), "c": CAMPAIGN, "jobs": "{}"})
            conn.execute(sa.text(
                "INSERT INTO review_decisions (item_id, item_version, reviewer, decided_at, decision, job_keys) "
                "VALUES (:id, 2, 'dana', '2026-11-30 10:00:00+00:00', 'approve', '{}')"),
                {"id": item_id_for(CAMPAIGN, "tent-02", 0)})
    finally:
        engine.dispose()
    queue = ReviewQueue(url)
    try:
        (item,) = queue.items(CAMPAIGN)
        assert (item.state, item.approved_by, item.rejected_placements, item.overrides) == \
            ("approved", "dana", {}, {})
        (old,) = queue.decisions(item.id)
        assert (old.decision, old.placement, old.copy_change) == ("approve", None, None)
        queue.reject_placement(item.id, "lee", "ig-story", "bad_crop", expected_version=2)
        assert queue.item(item.id).rejected_placements["ig-story"]["by"] == "lee"
        with queue.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head() == "0003"
    finally:
        queue.close()
