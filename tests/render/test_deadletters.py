"""Dead letters: failures added and counted, cleared when the job renders, stored only on change."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from tests.qa.synth import make_job

from render.deadletters import load_dead_letters, rendered_jobs, retry_jobs, save_dead_letters, update_dead_letters
from render.stage import RenderFailure, RenderReport
from store.keys import dead_letters_key, render_key
from store.documents import DocumentError
from store.local import LocalStore

T1 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.timezone.utc)
T2 = dt.datetime(2026, 11, 24, 1, 0, tzinfo=dt.timezone.utc)
A, B, C = make_job("a"), make_job("b"), make_job("c", variant=2)


def failed(*jobs, reason: str = "budget") -> RenderReport:
    return RenderReport(failed=[RenderFailure(j.key, reason, f"{reason} for {j.row_key}") for j in jobs])


def test_failures_are_added_with_the_job_and_reason_then_counted_and_cleared():
    letters = update_dead_letters([], failed(B, A), [A, B, C], now=T1)
    assert [(x.asset_id, x.variant, x.aspect, x.reason, x.attempts) for x in letters] == [
        ("a", 1, "1:1", "budget", 1), ("b", 1, "1:1", "budget", 1)]
    assert letters[0].job_key == A.key and letters[0].first_failed == "2026-11-23T01:00:00+00:00"

    again = RenderReport(rendered=[B.key], failed=[RenderFailure(A.key, "oom", "out of memory")])
    letters = update_dead_letters(letters, again, [A, B], now=T2)
    (a,) = letters
    assert (a.reason, a.message, a.attempts) == ("oom", "out of memory", 2)
    assert (a.first_failed, a.last_failed) == ("2026-11-23T01:00:00+00:00", "2026-11-24T01:00:00+00:00")
    assert update_dead_letters(letters, RenderReport(cached=[A.key]), [A], now=T2) == []


def test_untouched_entries_stay_unless_the_whole_plan_no_longer_has_them():
    letters = update_dead_letters([], failed(A, B), [A, B], now=T1)
    assert update_dead_letters(letters, RenderReport(rendered=[C.key]), [C], now=T2) == letters
    assert [x.job_key for x in update_dead_letters(letters, RenderReport(), [], now=T2, planned={B.key})] == [B.key]


def test_a_failure_for_a_job_not_given_is_an_error():
    with pytest.raises(ValueError, match="not among the jobs given"):
        update_dead_letters([], failed(C), [A], now=T1)


def test_store_round_trip_writes_only_on_change_and_removes_an_empty_list(tmp_path: Path):
    store = LocalStore(tmp_path)
    assert load_dead_letters(store, "spring") == []
    assert save_dead_letters(store, "spring", []) is False and not store.exists(dead_letters_key("spring"))
    letters = update_dead_letters([], failed(A, reason="model_error"), [A], now=T1)
    assert save_dead_letters(store, "spring", letters) is True
    body = json.loads((tmp_path / "spring" / "dead-letters.json").read_text(encoding="utf-8"))
    assert body["dead_letters"][0]["reason"] == "model_error" and body["dead_letters"][0]["job_key"] == A.key
    mtime = (tmp_path / "spring" / "dead-letters.json").stat().st_mtime_ns
    assert save_dead_letters(store, "spring", letters) is False
    assert (tmp_path / "spring" / "dead-letters.json").stat().st_mtime_ns == mtime
    assert load_dead_letters(store, "spring") == letters
    assert save_dead_letters(store, "spring", []) is True and not store.exists(dead_letters_key("spring"))


def test_a_broken_file_is_a_document_error_naming_it(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put(dead_letters_key("spring"), b'{"format": 1, "dead_letters": [{"job_key": "x"}]}')
    with pytest.raises(DocumentError, match=r"dead-letters\.json: not a valid DeadLetters document \(campaign: Field "
                                            r"required \(and \d+ more\)\); fix or delete the file"):
        load_dead_letters(store, "spring")


def test_retry_selects_planned_dead_letters_and_qa_gets_every_job_with_a_render(tmp_path: Path):
    letters = update_dead_letters([], failed(C, A), [A, C], now=T1)
    assert retry_jobs([A, B, C], letters) == [A, C]
    store = LocalStore(tmp_path)
    store.put(render_key(B.key), b"png")  # rendered by an earlier run, not attempted now
    report = RenderReport(rendered=[A.key], failed=[RenderFailure(C.key, "error", "boom")])
    assert rendered_jobs([A, B, C, make_job("new")], report, store) == [A, B]
