"""pipeline.stream's plain parts: the bounded worker, which streamed results and export rows a
run takes, and the rows a check shard receives."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import pytest

from exports.stage import ExportItem
from exports.fingerprint import item_identity
from pipeline.stream import BoundedWorker, ExportFeed, RowWork, Streamed, settled_rows, take_streamed_rows
from tests.render.jobs import make_job


def item(i: int, approval: str = "qa-auto-1") -> ExportItem:
    job = make_job(i)
    return ExportItem(campaign="test", asset_id=job.row_key, row=i, variant=0, placements=("meta.feed.square",),
                      renders={"1:1": job}, qa_verdict="pass", approval_id=approval, approved_by="qa-auto",
                      alt_text="a boot")


def rows_of(export: ExportItem, rewritten: str = "new file") -> list[dict]:
    return [{"asset_id": export.asset_id, "variant": 0, "path": f"test/exports/meta.feed.square/{export.asset_id}.{ext}",
             "status": "exported", "rewritten": rewritten} for ext in ("webp", "jpg")]


def test_bounded_worker_blocks_when_full_takes_what_waits_at_once_and_raises_a_failure_at_close():
    calls, gate = [], threading.Event()

    def work(values: list[int]) -> None:
        gate.wait(30)
        if 9 in values:
            raise ValueError("bad item 9")
        calls.append(values)

    worker: BoundedWorker[int] = BoundedWorker(work, depth=2, name="test")
    worker.put(1)  # taken by the thread, which waits at the gate
    time.sleep(0.2)
    worker.put(2)
    worker.put(3)  # two wait: the queue is full
    started = time.monotonic()
    threading.Timer(0.5, gate.set).start()
    worker.put(4)  # blocks until the thread takes 2 and 3
    assert time.monotonic() - started >= 0.4
    time.sleep(0.3)
    worker.put(9)
    worker.put(10)
    with pytest.raises(ValueError, match="bad item 9"):
        worker.close()
    assert calls[0] == [1] and calls[1][:2] == [2, 3] and [v for call in calls for v in call] == [1, 2, 3, 4], \
        "what waited is taken at once; items after a failure are skipped"
    with pytest.raises(ValueError, match="depth"):
        BoundedWorker(work, depth=0, name="bad")


def test_streamed_rows_are_taken_only_for_the_same_item():
    same, changed, kept, fresh = item(1), item(2), item(3), item(4)
    streamed = {("row-1", 0): (item_identity(same), rows_of(same)),
                ("row-2", 0): (item_identity(changed), rows_of(changed)),
                ("row-3", 0): (item_identity(kept), rows_of(kept, rewritten=""))}
    now = [same, dataclasses.replace(changed, approval_id="rev-2"), dataclasses.replace(kept, headline="New"), fresh]
    todo, taken, stale = take_streamed_rows(now, streamed)
    assert [i.asset_id for i in todo] == ["row-2", "row-3", "row-4"]
    assert taken == rows_of(same)
    # what the stream wrote for an approval that changed goes; a file it only kept (rewritten "") stays
    assert stale == [r["path"] for r in rows_of(changed)]
    assert item_identity(item(1)) == item_identity(same) != item_identity(dataclasses.replace(same, row=9))


def test_rows_settle_only_when_the_stream_checked_the_jobs_the_run_checks():
    a, b, c = make_job(1), make_job(2), make_job(3)
    streamed = Streamed(rows={"row-1": [a.key], "row-2": [], "row-3": [c.key]})
    # row-2: the stream saw its render fail, the final report has it rendered (a retry): checked again
    assert settled_rows([a, b, c], streamed) == {"row-1", "row-3"}
    assert settled_rows([a], streamed) == {"row-1", "row-2"}


def test_row_work_travels_as_json_parameters():
    jobs = (make_job(1), make_job(2))
    work = RowWork("row-1", jobs, (jobs[1],), export=True)
    assert RowWork.from_dict(work.to_dict()) == work


def slow_task(task: tuple) -> list[dict]:
    """A stand-in export task (run in the pool's processes too): its number, the process that ran it."""
    number, seconds = task
    if number < 0:
        raise ValueError(f"task {number} cannot be exported")
    time.sleep(seconds)
    return [{"task": number, "pid": os.getpid()}]


def test_export_feed_runs_waiting_tasks_here_too_once_drained_each_into_its_own_rows():
    feed = ExportFeed(1, 3, run=slow_task)
    try:
        parts = [[] for _ in range(4)]
        for number, rows in enumerate(parts):
            feed.put(rows, (number, 1.0))  # the pool's one process is busy with one for a second at least
        feed.drain()
    finally:
        feed.close()
    assert [[row["task"] for row in rows] for rows in parts] == [[0], [1], [2], [3]]
    assert os.getpid() in {rows[0]["pid"] for rows in parts}  # this process took waiting tasks


def test_export_feed_bounds_the_waiting_tasks():
    feed = ExportFeed(1, 1, run=slow_task)
    try:
        feed.put([], (0, 2.0))
        more = threading.Thread(target=lambda: [feed.put([], (n, 0.0)) for n in (1, 2, 3)])
        more.start()
        time.sleep(0.5)
        assert more.is_alive()  # one task waits (the pool's process runs or starts the first): put blocks
        more.join(timeout=60)  # the pool's process takes them one by one
        assert not more.is_alive()
        feed.drain()
    finally:
        feed.close()


def test_export_feed_raises_a_failed_task_at_drain_and_skips_the_rest():
    feed = ExportFeed(1, 4, run=slow_task)
    later: list[dict] = []
    try:
        feed.put([], (-1, 0.0))
        deadline = time.monotonic() + 60
        while feed.error is None and time.monotonic() < deadline:  # the pool's process starts and fails it
            time.sleep(0.05)
        feed.put(later, (1, 0.0))
        with pytest.raises(ValueError, match="task -1 cannot be exported"):
            feed.drain()
    finally:
        feed.close()
    assert later == []
