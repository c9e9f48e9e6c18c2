"""Overnight deployment runs wait for designers without holding a worker.

A real Prefect server, the ``spring-launch-nightly`` deployment of ``prefect.yaml`` run by a
process worker of the ``gpu`` pool, and the ``brandbatch review`` web app: one run suspends after queuing and is resumed by "publish
approved"; another's wait runs out and fails, and "publish approved" then exports its
approvals through the export flow instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prefect import flow
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import TypeAdapter, ValidationError

from flows.batch import ReviewWait
from flows.review_wait import wait_for_designers, waiting_runs
from review.queue import ReviewQueue
from tests import prefect_api

SHEETS = {
    "camp-a": "asset_id,style,product,scene,placements\n"
              "tent-01,acmewait@1,a green tent,a lakeside meadow,meta.feed.square\n"
              "boots-02,acmewait@1,hiking boots,a rocky river,meta.feed.square\n",
    "camp-b": "asset_id,style,product,scene,placements\n"
              "pack-03,acmewait@1,a trail pack,an alpine ridge,meta.feed.square\n",
}
TOKEN = "dana-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check: Callable[[], object], timeout: float, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(encoding="utf-8", errors="replace")[-4000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


class Processes:
    """Subprocesses in their own process groups, all killed at the end."""

    def __init__(self, root: Path) -> None:
        self.root, self.procs = root, []

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, Path]:
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc, log

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def workdir(tmp_path: Path, repo: Path) -> Path:
    shutil.copytree(repo / "styles", tmp_path / "styles")
    style = yaml.safe_load((repo / "styles" / "acme" / "v2.yaml").read_text(encoding="utf-8"))
    # One small render per variant, each in the palette's uncertainty band: a designer must look.
    style |= {"name": "acmewait", "version": 1, "steps": 2, "aspect_ratios": ["1:1"],
              "qa": {**style["qa"], "palette_min_share": 0.5, "palette_uncertainty": 0.5, "review_sample_rate": 0}}
    (tmp_path / "styles" / "acmewait").mkdir()
    (tmp_path / "styles" / "acmewait" / "v1.yaml").write_text(yaml.safe_dump(style), encoding="utf-8")
    for name, text in SHEETS.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture
def stack(workdir: Path, tmp_path: Path, repo: Path) -> Iterator[dict]:
    """Prefect server + prefect.yaml's nightly deployment + a process worker + the review app."""
    api_port, review_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": api,
           "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": "1",
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_LOGGING_LEVEL": "INFO", "BRANDBATCH_HOME": str(repo),
           "BRANDBATCH_REVIEWER_TOKENS": f"dana:{TOKEN}", "COLUMNS": "200"}
    env.pop("BRANDBATCH_REVIEW_DB", None)
    bin_dir = Path(sys.executable).parent
    procs = Processes(tmp_path)
    (workdir / "out").mkdir()  # the review server serves an existing --out only
    try:
        server, server_log = procs.start("server", [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1",
                                                    "--port", str(api_port)], env, workdir)
        review, review_log = procs.start("review", [str(bin_dir / "brandbatch"), "review", "--out", "out",
                                                    "--port", str(review_port)], env, workdir)
        wait_until("the Prefect server", lambda: _get(f"{api}/health"), 90, server, server_log)
        # prefect.yaml runs campaigns on the cpu pool (they only orchestrate render shards).
        worker, worker_log = procs.start("worker", [str(bin_dir / "prefect"), "worker", "start", "--pool", "cpu",
                                                    "--type", "process"], env, workdir)
        wait_until("the cpu work pool", lambda: _get(f"{api}/work_pools/cpu"), 60, worker, worker_log)
        deploy = subprocess.run([str(bin_dir / "prefect"), "--no-prompt", "deploy", "--name", "spring-launch-nightly"],
                                cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        wait_until("the review app", lambda: _get(f"http://127.0.0.1:{review_port}/healthz"), 60, review, review_log)
        yield {"api": api, "review": f"http://127.0.0.1:{review_port}", "worker": worker, "log": worker_log}
    finally:
        procs.stop()


def _get(url: str) -> httpx.Response | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response if response.status_code == 200 else None


def start_run(api: str, workdir: Path, campaign: str, wait: str) -> str:
    deployment = prefect_api.get_json(f"{api}/deployments/name/campaign_batch/spring-launch-nightly")
    parameters = {"sheet": str(workdir / f"{campaign}.csv"), "out": str(workdir / "out"),
                  "styles": str(workdir / "styles"), "formats": ["webp"], "wait_for_review": wait}
    # Render in the campaign's own process: this test is about the review wait, not shards.
    job_variables = {"env": {"BRANDBATCH_SHARD_DEPLOYMENT": ""}}
    return prefect_api.post_json(f"{api}/deployments/{deployment['id']}/create_flow_run",
                                 {"parameters": parameters, "job_variables": job_variables})["id"]


def run_state(api: str, run_id: str) -> dict:
    return prefect_api.get_json(f"{api}/flow_runs/{run_id}")["state"]


def run_logs(api: str, run_id: str) -> str:
    logs = prefect_api.post_json(f"{api}/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
    return "\n".join(entry["message"] for entry in logs)


def flow_run_processes(worker: subprocess.Popen) -> list[str]:
    """The worker's child processes (each flow run is one)."""
    pids = []
    for children in Path(f"/proc/{worker.pid}/task").glob("*/children"):
        try:
            pids += children.read_text().split()
        except OSError:
            continue  # the thread ended meanwhile
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def post_as_designer(review: str, path: str, body: dict) -> httpx.Response:
    """Log in to the review app with the reviewer token and post ``body`` to ``path`` (CSRF, origin)."""
    with httpx.Client(base_url=review, follow_redirects=False, timeout=30) as client:
        page = client.get("/login")
        csrf = re.search(r'<meta name="csrf" content="([^"]+)">', page.text).group(1)
        origin = {"origin": review}
        assert client.post("/login", data={"token": TOKEN, "csrf": csrf}, headers=origin).status_code == 303
        csrf = re.search(r'<meta name="csrf" content="([^"]+)">', client.get("/").text).group(1)
        return client.post(path, json=body, headers={**origin, "x-csrf-token": csrf, "accept": "application/json"})


def publish(review: str, campaign: str, note: str) -> None:
    response = post_as_designer(review, f"/c/{campaign}/publish", {"note": note})
    assert response.status_code == 202, response.text


def manifest(workdir: Path, campaign: str) -> list[dict]:
    path = workdir / "out" / campaign / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


@pytest.mark.parametrize(("given", "wait"), [("PT12H", dt.timedelta(hours=12)), (90, dt.timedelta(seconds=90)),
                                             ("P7D", dt.timedelta(days=7))])
def test_review_wait_is_a_bounded_duration(given: object, wait: dt.timedelta) -> None:
    assert TypeAdapter(ReviewWait).validate_python(given) == wait


@pytest.mark.parametrize(("given", "message"), [
    (True, "not true"), (0, "more than 0 and at most 7 days .* but is 0:00:00"),
    (-5, "but is -1 day, 23:59:55"), ("P8D", "but is 8 days"), ("12h", "valid timedelta")])
def test_review_wait_refuses_what_is_not_a_bounded_duration(given: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(ReviewWait).validate_python(given)


@flow
def local_campaign_step() -> object:
    return wait_for_designers("camp-a", dt.timedelta(minutes=5), queued=2)


@pytest.mark.slow
def test_runs_wait_for_designers_then_publish_resumes_or_exports(workdir: Path, stack: dict) -> None:
    api, logs = stack["api"], stack["log"]
    waiting = start_run(api, workdir, "camp-a", "PT10M")
    timing_out = start_run(api, workdir, "camp-b", "PT30S")
    seen: set[str] = set()  # flow-run processes seen while the runs render

    def suspended() -> bool:
        seen.update(flow_run_processes(stack["worker"]))
        return run_state(api, waiting)["name"] == "Suspended"

    wait_until("camp-a's run to suspend", suspended, 240, stack["worker"], logs)
    wait_until("camp-b's run to suspend", lambda: run_state(api, timing_out)["name"] in ("Suspended", "Failed"), 240,
               stack["worker"], logs)
    wait_until("camp-b's suspend in its log", lambda: "suspending for at most 0:00:30" in run_logs(api, timing_out), 30)
    # Suspended: the flow-run processes have exited, nothing holds the worker.
    assert seen, "no flow-run process of the worker was seen"
    with temporary_settings({PREFECT_API_URL: api}):  # each run is found by its campaign's key
        assert [str(r.id) for r in waiting_runs("camp-a")] == [waiting]
        assert [str(r.id) for r in waiting_runs("camp-b")] in ([timing_out], [])  # [] if its 30 s ran out
    wait_until("the flow-run processes to exit", lambda: not flow_run_processes(stack["worker"]), 30)
    assert manifest(workdir, "camp-a") == [] and manifest(workdir, "camp-b") == []

    queue = ReviewQueue.for_out(workdir / "out")
    try:
        items = {i.asset_id: i for c in SHEETS for i in queue.items(c)}
        assert {a: i.state for a, i in items.items()} == {"tent-01": "queued", "boots-02": "queued",
                                                          "pack-03": "queued"}
        queue.decide(items["tent-01"].id, "dana", "approve", expected_version=items["tent-01"].version)
        queue.decide(items["pack-03"].id, "dana", "approve", expected_version=items["pack-03"].version)
    finally:
        queue.close()

    # camp-b's wait runs out: Prefect fails the run, and it exports nothing.
    failed = wait_until("the timed-out run to fail", lambda: (s := run_state(api, timing_out))["type"] == "FAILED"
                        and s, 60)
    assert "never resumed" in failed["message"]
    assert manifest(workdir, "camp-b") == []

    # camp-a: "publish approved" resumes the waiting run; it exports the approved variant only.
    resumed_at = time.monotonic()
    publish(stack["review"], "camp-a", "tent is final")
    done = wait_until("the resumed run to complete", lambda: (s := run_state(api, waiting))["type"] in
                      ("COMPLETED", "FAILED", "CRASHED") and s, 180, stack["worker"], logs)
    resume_seconds = time.monotonic() - resumed_at
    assert done["type"] == "COMPLETED", done
    assert [(r["asset_id"], r["approved_by"]) for r in manifest(workdir, "camp-a")] == [("tent-01", "dana")]
    wait_until("camp-a's resume in its log", lambda: "review of camp-a published by dana (tent is final); "
               "1 variant(s) still queued are not exported" in run_logs(api, waiting), 30)
    print(f"resume -> completed in {resume_seconds:.1f} s")

    # camp-b: no run waits any more, so "publish approved" runs the export flow instead.
    publish(stack["review"], "camp-b", "")
    rows = wait_until("camp-b's export", lambda: manifest(workdir, "camp-b"), 120)
    assert {(r["asset_id"], r["approved_by"]) for r in rows} == {("pack-03", "dana")}  # in every default format
    assert run_state(api, timing_out)["type"] == "FAILED"

    # A run without a deployment cannot be resumed after a suspend: it does not wait, and says so.
    with temporary_settings({PREFECT_API_URL: api}):
        state = local_campaign_step(return_state=True)
    assert state.is_completed() and state.result() is None
    wait_until("the local run's warning", lambda: "wait_for_review is ignored: this run of camp-a has no deployment"
               in run_logs(api, str(state.state_details.flow_run_id)), 30)


def reroll(review: str, item_id: str, version: int) -> None:
    """A designer's reroll through the review app."""
    response = post_as_designer(review, f"/i/{item_id}/decide", {"decision": "reroll", "version": version,
                                                                 "reason": "composition"})
    assert response.status_code == 200 and response.json()["state"] == "reroll_requested", response.text


@pytest.mark.slow
def test_a_reroll_in_the_review_app_starts_a_run_of_the_campaigns_deployment(workdir: Path, stack: dict) -> None:
    api = stack["api"]
    first = start_run(api, workdir, "camp-b", None)
    wait_until("camp-b's first run", lambda: run_state(api, first)["type"] == "COMPLETED", 240, stack["worker"],
               stack["log"])
    queue = ReviewQueue.for_out(workdir / "out")
    try:
        (item,) = queue.items("camp-b")
    finally:
        queue.close()
    assert item.state == "queued" and item.reroll == 0

    reroll(stack["review"], item.id, item.version)
    runs = wait_until("a reroll run of the deployment", lambda: prefect_api.post_json(
        f"{api}/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["reroll"]}}}), 60, stack["worker"], stack["log"])
    (run,) = runs
    deployment = prefect_api.get_json(f"{api}/deployments/name/campaign_batch/spring-launch-nightly")
    assert run["deployment_id"] == deployment["id"] and run["parameters"]["sheet"] == str(workdir / "camp-b.csv")
    done = wait_until("the reroll run to finish", lambda: (s := run_state(api, run["id"]))["type"] in
                      ("COMPLETED", "FAILED", "CRASHED") and s, 240, stack["worker"], stack["log"])
    assert done["type"] == "COMPLETED", done
    queue = ReviewQueue.for_out(workdir / "out")
    try:
        again = queue.item(item.id)
        assert (again.state, again.reroll) == ("queued", 1)  # rendered by the deployment's run, back in the queue
        assert again.job_keys != item.job_keys
        assert [d.decision for d in queue.decisions(item.id)][-2:] == ["reroll", "requeue"]
    finally:
        queue.close()
