"""A designer's reroll is rendered by the campaign flow like any planned job (render pass,
QA, dead letters, metrics), then queued for the designers again."""

from __future__ import annotations

import pytest

from review.queue import ReviewQueue
from store import open_store
from store.keys import qa_key, render_key
from tests.e2e.test_export_identity import Project


@pytest.mark.slow
def test_the_next_campaign_run_renders_checks_and_queues_a_reroll(project: Project):
    first = project.run()
    assert first.rerolled == 0
    queue = ReviewQueue.for_out(project.out)
    try:
        (item,) = [i for i in queue.items("identity") if i.asset_id == "pack-01"]
        (job,) = queue.reroll(item.id, "dana", expected_version=item.version, reason="composition")
    finally:
        queue.close()
    store = open_store(str(project.out))
    assert not store.exists(render_key(job.key))  # the review app only recorded the request

    summary = project.run()
    assert summary.rerolled == 1 and summary.rendered == 1 and not summary.failed
    assert store.exists(render_key(job.key)) and store.exists(qa_key(job.key))
    queue = ReviewQueue.for_out(project.out)
    try:
        again = queue.item(item.id)
        assert again.state in ("queued", "approved") and again.reroll == 1 and again.job_keys == {"1:1": job.key}
        assert [d.decision for d in queue.decisions(item.id)][-2:] == ["reroll", "requeue"]
    finally:
        queue.close()
    assert project.run().rerolled == 0  # done: nothing left to reroll


@pytest.mark.slow
def test_a_reroll_in_the_review_app_runs_the_campaign_flow_in_the_background(project: Project):
    """No Prefect deployment behind the campaign: the review server's background worker runs
    the campaign flow in its process (recorded parameters), which renders, checks and queues."""
    from starlette.testclient import TestClient

    from flows.reroll import Reroller, launch_of
    from review.app import create_app
    from store.keys import runs_prefix
    from tests.review.test_app import REVIEWERS, decide, login

    project.run()
    launch = launch_of(str(project.out), "identity")
    assert launch is not None and launch.deployment is None
    assert launch.parameters["sheet"] == str(project.root / "identity.csv")
    store = open_store(str(project.out))
    runs_before = len(store.list(runs_prefix("identity")))
    queue = ReviewQueue.for_out(project.out)
    try:
        (item,) = [i for i in queue.items("identity") if i.asset_id == "pack-01"]
    finally:
        queue.close()

    reroll = Reroller(str(project.out))
    app = create_app(str(project.out), reviewers=REVIEWERS, allowed_hosts=["testserver"], rerender=reroll)
    with TestClient(app, follow_redirects=False) as client:
        csrf = login(client)
        assert decide(client, csrf, item, "reroll", reason="composition").json()["state"] == "reroll_requested"
    assert reroll.background.wait_idle(600) and reroll.background.finished == 1
    assert len(store.list(runs_prefix("identity"))) == runs_before + 1  # a campaign run did the work
    queue = ReviewQueue.for_out(project.out)
    try:
        again = queue.item(item.id)
        assert again.reroll == 1 and again.state in ("queued", "approved")
        assert all(store.exists(render_key(key)) and store.exists(qa_key(key)) for key in again.job_keys.values())
        assert [d.decision for d in queue.decisions(item.id)][-2:] == ["reroll", "requeue"]
    finally:
        queue.close()
