"""Two runs of one campaign: the second waits for the first or refuses with one line (a file lock
on a local folder; a conditional-write lease on S3, tested on a real SeaweedFS server)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from store import open_store
from store.locks import CampaignBusy, campaign_lock


def _outs(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    return [str(tmp_path / "out"), request.getfixturevalue("s3_out")]


def _hold(out: str, campaign: str, seconds: float, ready, ttl: float) -> None:
    with campaign_lock(open_store(out), campaign, ttl=ttl):
        ready.set()
        time.sleep(seconds)


@pytest.fixture(params=["local", "s3"])
def out(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "out") if request.param == "local" else request.getfixturevalue("s3_out")


def _holder(out: str, campaign: str, seconds: float, ttl: float = 30):
    context = multiprocessing.get_context("spawn")  # another process, as another `brandbatch run` is
    ready = context.Event()
    process = context.Process(target=_hold, args=(out, campaign, seconds, ready, ttl))
    process.start()
    assert ready.wait(60), "the holder did not get the lock"
    return process


def test_a_second_run_refuses_with_one_line_naming_the_holder(out: str) -> None:
    holder = _holder(out, "camp", 600)
    try:
        started = time.monotonic()
        with pytest.raises(CampaignBusy) as refused:
            with campaign_lock(open_store(out), "camp", wait=1):
                pytest.fail("two runs held the lock at once")
        assert time.monotonic() - started >= 1
        message = str(refused.value)
        assert "\n" not in message and f"pid {holder.pid}" in message and "campaign camp is being run" in message
        assert ".run.lock" in message or "run.lease" in message
        with campaign_lock(open_store(out), "other-campaign"):  # other campaigns are not held up
            pass
    finally:
        holder.terminate()
        holder.join()


def test_a_second_run_that_waits_goes_on_when_the_first_ends(out: str) -> None:
    holder = _holder(out, "camp", 2)
    started = time.monotonic()
    with campaign_lock(open_store(out), "camp", wait=60):
        assert time.monotonic() - started >= 1  # it waited
    holder.join()
    with campaign_lock(open_store(out), "camp"):  # released at the end: free again
        pass


def test_a_killed_holder_does_not_block_forever(out: str) -> None:
    """kill -9: the kernel drops a file lock at once; an S3 lease is taken over once its ttl ran out."""
    holder = _holder(out, "camp", 60, ttl=3)
    holder.kill()
    holder.join()
    store = open_store(out)
    if out.startswith("s3://"):
        with pytest.raises(CampaignBusy):
            with campaign_lock(store, "camp", ttl=3):
                pass
    with campaign_lock(store, "camp", wait=10, ttl=3):
        pass


def test_the_export_flow_takes_the_lock_too(tmp_path: Path, prefect_home: Path) -> None:
    """Deployments and the review app's "publish" run the flows without the command line: the
    flow itself holds the lock."""
    from flows.export import export_campaign

    out = str(tmp_path / "out")
    holder = _holder(out, "camp", 600)  # Prefect's server may take a minute to start on a busy machine
    try:
        with pytest.raises(CampaignBusy, match=f"pid {holder.pid}"):
            export_campaign("camp", out=out, formats=["webp"])
    finally:
        holder.terminate()
        holder.join()
    assert not (tmp_path / "out" / "camp" / "manifest.json").exists()


def test_every_command_refuses_while_a_run_holds_the_campaign(tmp_path: Path, repo: Path, prefect_home: Path) -> None:
    from tests.e2e.test_campaign_run import brandbatch

    (tmp_path / "camp.csv").write_text("asset_id,style,product,scene\ntent-01,acme@2,a tent,a meadow\n",
                                       encoding="utf-8")
    with campaign_lock(open_store(str(tmp_path / "out")), "camp"):
        for args in (["run", "camp.csv"], ["export", "camp"], ["run", "camp.csv", "--wait", "1"]):
            refused = brandbatch(*args, "--out", "out", cwd=tmp_path)
            assert refused.returncode == 1, refused.stdout + refused.stderr
            lines = [line for line in refused.stderr.splitlines() if "is being run by" in line]
            assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
            assert "campaign camp is being run by pid" in lines[0] and ".run.lock" in lines[0]
    assert not (tmp_path / "out" / "renders").exists()  # nothing was done
