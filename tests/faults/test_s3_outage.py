"""The S3 server stops in the middle of a run: the write is retried, then the run stops with a
clear error naming the store; nothing half-written is left, and a rerun completes."""

from __future__ import annotations

import pytest
from tests.render.jobs import make_job

from render.stage import render_missing, stored_render_problem
from store import S3Store, StoreError
from store.keys import render_key

MAX_ATTEMPTS = 3


def test_server_stopped_mid_run_retries_then_fails_clearly_and_a_rerun_completes(stoppable_s3):
    url = f"s3://{stoppable_s3.new_bucket()}/run"
    store = S3Store(url, endpoint_url=stoppable_s3.endpoint, max_attempts=MAX_ATTEMPTS)
    jobs = [make_job(i, width=32, height=32, steps=1) for i in range(12)]
    attempts: list[tuple[str, bool]] = []  # (object URL, failed?) of every PutObject attempt, in order

    def note_attempt(request_dict: dict, caught_exception=None, response=None, **_) -> None:
        """Called after every HTTP attempt of a PutObject, retries included."""
        failed = caught_exception is not None or (response is not None and response[0].status_code >= 500)
        attempts.append((request_dict["url"], failed))

    store.client.meta.events.register("needs-retry.s3.PutObject", note_attempt)
    finished: list[str] = []

    def stop_after_four(key: str) -> None:
        finished.append(key)
        if len(finished) == 4:
            stoppable_s3.stop()

    with pytest.raises(StoreError) as failure:
        render_missing(jobs, store, batch_size=2, on_done=stop_after_four)
    message = str(failure.value)
    # the cause is the last attempt's: refused, or a 500 / dropped connection while the server shut down
    assert message.startswith(f"S3 put of {url}/renders/") and f"(endpoint {stoppable_s3.endpoint}, " in message
    assert f"{MAX_ATTEMPTS} attempts at most" in message and "(rerun to resume once the store works)" in message
    # retried: the write that failed was tried MAX_ATTEMPTS times in a row; then stopped: nothing was tried after it
    last = attempts[-MAX_ATTEMPTS:]
    assert len({url for url, _ in last}) == 1 and all(failed for _, failed in last), attempts
    assert attempts.count(last[0]) == MAX_ATTEMPTS, attempts
    assert len({url for url, failed in attempts if failed} - {last[0][0]}) <= 1, attempts  # at most one cut mid-stop

    stoppable_s3.start()
    stored = [job for job in jobs if store.exists(render_key(job.key))]
    assert len(stored) >= 4 and all(stored_render_problem(store, job) == "" for job in stored)
    rerun = render_missing(jobs, store, batch_size=2)
    assert rerun.failed == [] and rerun.damaged == {}
    assert sorted(rerun.cached) == sorted(job.key for job in stored)
    assert sorted(rerun.cached + rerun.rendered) == sorted(job.key for job in jobs)
    assert all(stored_render_problem(store, job) == "" for job in jobs)
