"""Lost review state fails closed: a review queue that is missing, empty, cut short, unreadable
or an old copy never lets a run, an export, a publish or the review app approve or ship what a
designer rejected; the queue is rebuilt from its decision log (``brandbatch review --rebuild``)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from tests.review.review_factories import CAMPAIGN, make_jobs, results_for

from flows.batch import export_task
from plan.planner import CampaignPlan
from review.actions import queue_for_review
from review.app import create_app
from review.queue import ReviewError, ReviewQueue, ReviewStateLost, ReviewStoreDamaged
from review.rebuild import rebuild_queue
from store import open_store

REVIEWERS = {"dana": "dana-token-0123456789"}
REPO = Path(__file__).resolve().parents[2]


def _plan() -> CampaignPlan:
    jobs = [j for a in ("tent-02", "boots-03") for j in make_jobs(a)]
    return CampaignPlan(campaign=CAMPAIGN, sheet=Path("camp.csv"), jobs=jobs)


def _decided(out: Path) -> dict[str, str]:
    """Queue two variants that pass QA (qa-auto approves both; a copy of the queue is kept as
    last night's backup); then a designer rejects tent-02."""
    plan = _plan()
    with closing(ReviewQueue.for_out(out)) as queue:
        queue_for_review(queue, plan, results_for(plan.jobs, "pass"))
    _checkpoint(out)
    shutil.copy(_db(out), _backup(out))
    queue = ReviewQueue.for_out(out)
    try:
        tent = next(i for i in queue.items(CAMPAIGN) if i.asset_id == "tent-02")
        queue.decide(tent.id, "dana", "reject", "off_brand", expected_version=tent.version)
        return {i.asset_id: i.state for i in queue.items(CAMPAIGN)}
    finally:
        queue.close()


def _db(out: Path) -> Path:
    return out / "review.sqlite3"


def _backup(out: Path) -> Path:
    return out.parent / "backup.sqlite3"


def old_copy(out: Path) -> None:
    lose_file(out)
    shutil.copy(_backup(out), _db(out))  # restored from the backup made before the rejection


def page_zeroed(out: Path) -> None:
    """One page zeroed where the items still read (the audit table's): only an integrity check
    of the whole file sees it."""
    _checkpoint(out)
    data = _db(out).read_bytes()
    for page in range(1, len(data) // 4096):
        _db(out).write_bytes(data[:page * 4096] + b"\0" * 4096 + data[(page + 1) * 4096:])
        connection = sqlite3.connect(_db(out))
        try:
            connection.execute("SELECT id, version, state, approval_id FROM review_items").fetchall()
            return
        except sqlite3.DatabaseError:
            continue
        finally:
            connection.close()
    raise AssertionError("no page of the queue can be zeroed with its items still readable")


def lose_file(out: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{_db(out)}{suffix}").unlink(missing_ok=True)


def empty_file(out: Path) -> None:
    lose_file(out)
    _db(out).write_bytes(b"")


def cut_short(out: Path) -> None:
    _checkpoint(out)
    data = _db(out).read_bytes()
    _db(out).write_bytes(data[: len(data) // 2])


def garbage(out: Path) -> None:
    _checkpoint(out)
    data = bytearray(_db(out).read_bytes())
    data[:100] = b"\x5a" * 100  # the header: not a database any more
    _db(out).write_bytes(bytes(data))


def unreadable(out: Path) -> None:
    lose_file(out)
    _db(out).mkdir()  # a folder where the file was (chmod would not stop root)


def _checkpoint(out: Path) -> None:
    queue = ReviewQueue.for_out(out)
    with queue.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    queue.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{_db(out)}{suffix}").unlink(missing_ok=True)


LOSSES: dict[str, Callable[[Path], None]] = {
    "missing": lose_file, "empty": empty_file, "cut_short": cut_short, "not_a_database": garbage,
    "unreadable": unreadable, "old_copy": old_copy, "page_zeroed": page_zeroed,
}
UNREADABLE = ("cut_short", "not_a_database", "unreadable", "page_zeroed")


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("BRANDBATCH_REVIEW_DB", raising=False)
    return tmp_path / "out"


def _one_line_naming_the_file(exc: ReviewError, out: Path) -> None:
    message = str(exc)
    assert "\n" not in message
    assert "brandbatch review --rebuild" in message, message
    assert "review.sqlite3" in message or "review-log" in message, message


def _run_queue(out: Path) -> None:
    plan = _plan()
    with closing(ReviewQueue.for_out(out)) as queue:
        queue_for_review(queue, plan, results_for(plan.jobs, "pass"))


def _export(out: Path) -> None:
    with closing(ReviewQueue.for_out(out)) as queue:
        export_task.fn(CAMPAIGN, queue, open_store(str(out)), {}, ["webp"], REPO / "styles")


def _review_app(out: Path) -> None:
    create_app(str(out), reviewers=REVIEWERS)


COMMANDS = {"run": _run_queue, "export_and_publish": _export, "review_app": _review_app}


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_lost_queue_stops_every_command_with_one_line(out: Path, loss: str, command: str) -> None:
    assert _decided(out) == {"tent-02": "rejected", "boots-03": "approved"}
    LOSSES[loss](out)
    with pytest.raises((ReviewStateLost, ReviewStoreDamaged)) as raised:
        COMMANDS[command](out)
    _one_line_naming_the_file(raised.value, out)
    if loss in ("missing", "empty"):
        # Nothing was queued as if new: no qa-auto approval of the rejected variant.
        queue = ReviewQueue(f"sqlite:///{_db(out)}")
        try:
            assert [i.state for i in queue.items(CAMPAIGN) if i.asset_id == "tent-02"] in ([], ["rejected"])
        finally:
            queue.close()


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_rebuild_restores_every_decision(out: Path, loss: str) -> None:
    before = _decided(out)
    queue = ReviewQueue.for_out(out)
    history = {i.asset_id: [(d.reviewer, d.decision, d.reason) for d in queue.decisions(i.id)]
               for i in queue.items(CAMPAIGN)}
    queue.close()
    LOSSES[loss](out)
    report = rebuild_queue(str(out))
    assert report.from_log == (1 if loss == "old_copy" else 2) and not report.damaged
    assert bool(report.moved_aside) == (loss in UNREADABLE)
    queue = ReviewQueue.for_out(out)
    try:
        queue.verify()
        assert {i.asset_id: i.state for i in queue.items(CAMPAIGN)} == before
        assert {i.asset_id: [(d.reviewer, d.decision, d.reason) for d in queue.decisions(i.id)]
                for i in queue.items(CAMPAIGN)} == history
    finally:
        queue.close()
    _run_queue(out)  # the run goes on and keeps the rejection
    queue = ReviewQueue.for_out(out)
    try:
        assert [v.asset_id for v in queue.approved(CAMPAIGN)] == ["boots-03"]
    finally:
        queue.close()


def test_a_lost_log_is_written_back_from_the_queue(out: Path) -> None:
    _decided(out)
    shutil.rmtree(out / "review-log")
    with pytest.raises(ReviewStateLost, match="lacks decisions"):
        _export(out)
    report = rebuild_queue(str(out))
    assert report.to_log == 2
    queue = ReviewQueue.for_out(out)
    try:
        queue.verify()
    finally:
        queue.close()
    lose_file(out)  # and now the log alone brings the rejection back
    rebuild_queue(str(out))
    queue = ReviewQueue.for_out(out)
    try:
        assert [v.asset_id for v in queue.approved(CAMPAIGN)] == ["boots-03"]
    finally:
        queue.close()


@pytest.mark.parametrize("damage", ["cut", "altered", "zeroed"])
def test_a_damaged_log_record_sends_its_item_back_to_a_designer(out: Path, damage: str) -> None:
    _decided(out)
    tent = sorted((out / "review-log" / CAMPAIGN).glob("*/000002.json"))
    assert len(tent) == 1  # the rejection is the only version 2
    data = tent[0].read_bytes()
    if damage == "cut":
        tent[0].write_bytes(data[: len(data) // 2])
    elif damage == "altered":
        record = json.loads(data)
        record["item"]["state"] = "approved"  # "the designer approved it" (not what they did)
        tent[0].write_text(json.dumps(record), encoding="utf-8")
    else:
        tent[0].write_bytes(b"\0" * len(data))
    lose_file(out)
    report = rebuild_queue(str(out))
    assert len(report.damaged) == 1 and str(tent[0]) in report.damaged[0]
    queue = ReviewQueue.for_out(out)
    try:
        states = {i.asset_id: i.state for i in queue.items(CAMPAIGN)}
        assert states == {"tent-02": "queued", "boots-03": "approved"}  # never back to qa-auto's approval
        queue.verify()
    finally:
        queue.close()


def test_a_write_the_log_has_already_fails_closed(out: Path) -> None:
    """The per-write defence: a fresh queue that would queue an item the log knows raises."""
    _decided(out)
    lose_file(out)
    queue = ReviewQueue.for_out(out)
    try:
        jobs = make_jobs("tent-02")
        with pytest.raises(ReviewStateLost, match="logged already"):
            queue.enqueue(jobs, results_for(jobs, "pass"))
        assert queue.items(CAMPAIGN) == []
    finally:
        queue.close()
