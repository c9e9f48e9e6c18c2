"""Render in this process, or as shards on Prefect workers: the ``render_shard`` flow and the choice.

In-process (the default, ``brandbatch run``): ``render_missing`` runs inside the campaign's
flow run, as it always did.

Sharded: when ``$BRANDBATCH_SHARD_DEPLOYMENT`` names a deployment of ``render_shard``
(``render_shard/render-shard`` in prefect.yaml) and ``PREFECT_API_URL`` points at a Prefect
server, the campaign splits the jobs not yet rendered into shards (``render.shards``: one
resolution bucket each, at most ``$BRANDBATCH_SHARD_SIZE`` jobs) and runs each shard as a flow
run of that deployment (``run_deployment``), so the workers of the ``gpu`` pool, on as many
machines as there are, share the campaign. Shards read jobs from their parameters and write
renders and their report through the store (``--out``; S3 when workers are on other
machines). Pixels are the same either way (one generator per image).

GPU slots: each shard holds one slot of the global concurrency limit ``gpu`` while it renders
(``prefect gcl create gpu --limit <GPUs>``); the slot is released when the shard ends or
fails, and by the server when its lease runs out after a process died
(``$BRANDBATCH_GPU_LEASE_SECONDS``, default 300, at least 60).

Crashes: a shard whose process died (SIGKILL, lost machine) stops sending heartbeats; the
automation made by ``ensure_crash_detection`` marks it Crashed after
``$BRANDBATCH_SHARD_STALE_SECONDS`` (default 90) and the campaign runs the shard again (at most
``SHARD_ATTEMPTS`` runs per shard), which renders only the jobs still missing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run as current_flow_run
from prefect.tasks import exponential_backoff

from plan.jobs import RenderJob
from render.shards import (Shard, merge_reports, render_waves, report_from_record, report_to_record, split_budget,
                           split_shards)
from render.stage import CHECK_THREADS, RenderFailure, RenderReport, render_missing, stored_render_problem
from settings import load_settings, variable
from store import Store, open_store
from store.documents import ShardReport, read_document, write_document
from store.keys import shard_report_key

DEPLOYMENT_ENV = variable("shard_deployment")
GPU_LIMIT = "gpu"
SHARD_ATTEMPTS = 3
CRASH_AUTOMATION = "brandbatch: crash render shards without heartbeats"
POLL_SECONDS = 2.0


def _transient(_task, _task_run, state) -> bool:
    """Retry store and network trouble, not bad arguments (they fail the same way again)."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, (ValueError, TypeError))


# Backoff 10 s, 20 s with +-50 % jitter (Prefect's retry_jitter_factor), so workers that failed
# together (a store outage) do not retry together. render_missing itself never raises for a bad
# job; what reaches a retry is the store or the network.
RENDER_RETRIES = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10),
                      retry_jitter_factor=0.5, retry_condition_fn=_transient)


def shard_deployment() -> str | None:
    """The shard deployment to render on (``flow/deployment``), or None to render in-process.

    ``$BRANDBATCH_SHARD_DEPLOYMENT`` asks for shards; they need a Prefect server
    (``PREFECT_API_URL``), because Prefect's temporary local server ends with the process."""
    name = load_settings().shard_deployment
    if not name:
        return None
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ValueError(f"${DEPLOYMENT_ENV}={name!r} asks for render shards on Prefect workers, but "
                         f"PREFECT_API_URL is not set: point it at the server the workers poll "
                         f"(e.g. http://127.0.0.1:4200/api), or unset ${DEPLOYMENT_ENV} to render in-process")
    return name


@task(cache_policy=NO_CACHE, **RENDER_RETRIES)
def render_shard_task(jobs: Sequence[RenderJob], store: Store, batch_size: int, max_images: int | None,
                      max_gpu_seconds: float | None) -> RenderReport:
    """Render the shard's missing jobs holding one ``gpu`` slot (released on any exit)."""
    with concurrency(GPU_LIMIT, occupy=1, lease_duration=load_settings().gpu_lease_seconds, strict=True):
        return render_missing(jobs, store, batch_size=batch_size, max_images=max_images,
                              max_gpu_seconds=max_gpu_seconds)


@flow(name="render_shard")
def render_shard(out: str, jobs: list[dict], batch_size: int = 4, max_images: int | None = None,
                 max_gpu_seconds: float | None = None) -> dict:
    """Render one shard of a campaign (jobs as ``RenderJob.to_dict()``); the report goes to
    ``shards/<flow run id>.json`` in the store, where the campaign reads it."""
    store = open_store(out)
    report = render_shard_task([RenderJob.from_dict(j) for j in jobs], store, batch_size, max_images,
                               max_gpu_seconds)
    record = ShardReport(flow_run_id=str(current_flow_run.id), node=load_settings().node or socket.gethostname(),
                         report=report_to_record(report))
    write_document(store, shard_report_key(record.flow_run_id), record)
    return record.model_dump()


def ensure_crash_detection(stale_seconds: float) -> None:
    """Make (once per server) the automation that marks a ``render_shard`` run Crashed when it
    sent no heartbeat for ``stale_seconds`` while not finished (Prefect's documented way to catch
    runs whose process died). Shards send heartbeats every 30 s (prefect.yaml job variables)."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    try:
        Automation.read(name=CRASH_AUTOMATION)
        return
    except ValueError:
        pass
    Automation(
        name=CRASH_AUTOMATION,
        description="A render shard that stopped sending heartbeats is dead: mark it Crashed so the "
                    "campaign runs it again.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": "render_shard"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=stale_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {stale_seconds:g} s: the shard's process died")],
    ).create()


def _check_gpu_limit(client) -> None:
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_global_concurrency_limit_by_name(GPU_LIMIT)
    except ObjectNotFound:
        raise ValueError(f"render shards hold a slot of the global concurrency limit {GPU_LIMIT!r}, which the "
                         f"Prefect server does not have: create it with `prefect gcl create {GPU_LIMIT} "
                         f"--limit <number of GPUs>`") from None


def render_sharded(jobs: Sequence[RenderJob], store: Store, deployment: str, *, batch_size: int,
                   max_images: int | None = None, max_gpu_seconds: float | None = None,
                   on_done: Callable[[str], None] | None = None,
                   on_failed: Callable[[str], None] | None = None) -> RenderReport:
    """Render the missing jobs as flow runs of ``deployment`` and merge their reports into the
    report ``render_missing`` would give. Budgets are shared among shards by job count. A shard
    run that crashed is run again (at most ``SHARD_ATTEMPTS`` runs); one that failed or ran out of
    attempts fails its jobs with reason ``error``, and the next campaign run resumes them.
    ``on_done``/``on_failed`` as for ``render_missing``, called as each shard's report arrives."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    done = on_done or (lambda _key: None)
    unique = {job.key: job for job in jobs}
    # the same test render_missing makes; a damaged render goes to a shard, which replaces it
    with ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="shard-check") as checks:
        problems = dict(zip(unique, checks.map(lambda job: stored_render_problem(store, job), unique.values())))
    cached = [key for key, problem in problems.items() if not problem]
    for key in cached:
        done(key)
    shards = split_shards([unique[key] for key, problem in problems.items() if problem],
                          load_settings().shard_size)
    if not shards:
        return RenderReport(cached=cached)
    ensure_crash_detection(load_settings().shard_stale_seconds)
    images = split_budget(max_images, shards, whole=True)
    seconds = split_budget(max_gpu_seconds, shards, whole=False)
    parent = current_flow_run.id
    # shards run in the checkout on their worker: a local store is passed as an absolute path
    out = store.root if store.root.startswith("s3://") else os.path.abspath(store.root)

    def submit(index: int, attempt: int):
        shard = shards[index]
        return run_deployment(
            deployment, timeout=0, as_subflow=True, tags=["shard"],
            flow_run_name=f"{shard.jobs[0].campaign}-{shard.id[:8]}-{attempt}",
            idempotency_key=f"{parent}:{shard.id}:{attempt}" if parent else None,
            parameters={"out": out, "jobs": [j.to_dict() for j in shard.jobs], "batch_size": batch_size,
                        "max_images": images[index], "max_gpu_seconds": seconds[index]})

    with get_client(sync_client=True) as client:
        _check_gpu_limit(client)
        reports: dict[int, RenderReport] = {}
        # masters first: a wave's shards all finish before the next wave (expansions) starts
        for wave in render_waves([job for shard in shards for job in shard.jobs]):
            keys = {job.key for job in wave}
            indexes = [i for i, shard in enumerate(shards) if shard.jobs[0].key in keys]
            running = {submit(i, 1).id: (i, 1) for i in indexes}
            logger.info("rendering %d jobs as %d shards on %s", sum(len(shards[i].jobs) for i in indexes),
                        len(indexes), deployment)
            while running:
                time.sleep(POLL_SECONDS)
                for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(running)))):
                    state = run.state
                    if state is None or not state.is_final():
                        continue
                    index, attempt = running.pop(run.id)
                    shard = shards[index]
                    if state.is_crashed() and attempt < SHARD_ATTEMPTS:
                        logger.warning("shard %s (flow run %s) crashed: %s; running it again", shard.id, run.name,
                                       state.message)
                        running[submit(index, attempt + 1).id] = (index, attempt + 1)
                        continue
                    reports[index] = _shard_report(store, shard, run, state)
                    failed = {failure.job_key for failure in reports[index].failed}
                    for job in shard.jobs:
                        if on_failed is not None and job.key in failed:
                            on_failed(job.key)
                        done(job.key)
    return merge_reports([RenderReport(cached=cached)] + [reports[i] for i in range(len(shards))])


def _shard_report(store: Store, shard: Shard, run, state) -> RenderReport:
    key = shard_report_key(str(run.id))
    if state.is_completed() and store.exists(key):
        return report_from_record(read_document(store, key, ShardReport).report)
    why = (f"render shard {shard.id} (flow run {run.name}) ended {state.name}: {state.message or 'no message'}"
           if not state.is_completed() else f"render shard {shard.id} (flow run {run.name}) left no report at {key}")
    return RenderReport(failed=[RenderFailure(job.key, "error", why) for job in shard.jobs])
