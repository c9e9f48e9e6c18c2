"""Render as shards on Prefect workers: the ``render_shard`` and ``check_shard`` flows and their dispatch
(the choice between in-process and shards is ``flows.sharding``).

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

Check shards: when ``$BRANDBATCH_CHECK_DEPLOYMENT`` names a deployment of ``check_shard``
(``check_shard/check-shard``, ``cpu`` pool), the campaign's stream (``pipeline.stream``) sends
finished asset rows, ``$BRANDBATCH_CHECK_SHARD_ROWS`` at a time, to flow runs of it (``CheckShards``):
each runs QA, queues the rows' variants and exports the approved ones on its worker, and leaves
its results and manifest rows at ``shards/<flow run id>.json``, merged by the campaign as they
arrive. Same idempotency keys and crash reruns as render shards; a shard that fails for good
leaves its rows to the campaign, which checks and exports them itself after rendering.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run as current_flow_run

from exports.assemble import plan_settings
from flows.sharding import RENDER_RETRIES
from pipeline.stream import RowWork, Streamed, check_rows
from plan.jobs import RenderJob, sha256_text
from plan.styles import Style
from qa import QAResult
from render.shards import (Shard, merge_reports, render_waves, report_from_record, report_to_record, split_budget,
                           split_shards)
from render.stage import CHECK_THREADS, RenderFailure, RenderReport, render_missing, stored_render_problem
from settings import load_settings
from store import Store, open_store
from store.documents import CheckShardReport, ExportedItemRecord, ShardReport, read_document, write_document
from store.keys import shard_report_key

GPU_LIMIT = "gpu"
SHARD_ATTEMPTS = 3
CRASH_AUTOMATION = "brandbatch: crash render shards without heartbeats"
CRASH_AUTOMATIONS = {"render_shard": CRASH_AUTOMATION,
                     "check_shard": "brandbatch: crash check shards without heartbeats"}
POLL_SECONDS = 2.0


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


def ensure_crash_detection(stale_seconds: float, flow_name: str = "render_shard") -> None:
    """Make (once per server) the automation that marks a run of ``flow_name`` (``render_shard``
    or ``check_shard``) Crashed when it sent no heartbeat for ``stale_seconds`` while not finished
    (Prefect's documented way to catch runs whose process died). Shards send heartbeats every
    30 s (prefect.yaml job variables)."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    name = CRASH_AUTOMATIONS[flow_name]
    try:
        Automation.read(name=name)
        return
    except ValueError:
        pass
    Automation(
        name=name,
        description="A shard that stopped sending heartbeats is dead: mark it Crashed so the "
                    "campaign runs it again.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": flow_name},
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


# ---- check shards: QA, review queueing and export of finished asset rows on the cpu pool ----

@task(cache_policy=NO_CACHE, **RENDER_RETRIES)
def check_rows_task(store: Store, out: str, campaign: str, rows: Sequence[RowWork], styles: dict[str, Style],
                    formats: Sequence[str], styles_dir: str | None) -> Streamed:
    settings, placements = plan_settings(styles_dir)
    return check_rows(store, out, campaign, rows, styles, placements=placements, formats=formats,
                      styles_dir=settings.styles_dir)


@flow(name="check_shard")
def check_shard(out: str, campaign: str, rows: list[dict], styles: list[dict], formats: list[str],
                styles_dir: str | None = None) -> dict:
    """QA, queue and export some finished asset rows of a campaign (``pipeline.stream.RowWork``
    dicts; ``styles`` as ``Style`` JSON); the report goes to ``shards/<flow run id>.json``."""
    store = open_store(out)
    library = {style.ref: style for style in (Style.model_validate(data) for data in styles)}
    done = check_rows_task(store, out, campaign, [RowWork.from_dict(row) for row in rows], library, formats,
                           styles_dir)
    record = CheckShardReport(
        flow_run_id=str(current_flow_run.id), node=load_settings().node or socket.gethostname(),
        results=[result.to_record() for result in done.results.values()], checked=done.rows,
        exports=[ExportedItemRecord(asset_id=asset_id, variant=variant, identity=identity, rows=made)
                 for (asset_id, variant), (identity, made) in done.exports.items()])
    write_document(store, shard_report_key(record.flow_run_id), record)
    return {"rows": len(rows), "results": len(record.results), "exports": len(record.exports)}


class CheckShards:
    """``pipeline.stream.Dispatcher`` on Prefect workers: each batch of finished rows runs as a
    flow run of the check shard ``deployment`` (``cpu`` pool), with the rules of render shards:
    idempotency key ``<campaign run>:<shard id>:<attempt>``, a crashed run is run again (at most
    ``SHARD_ATTEMPTS`` runs), reports merged as they arrive. A shard that failed for good leaves
    its rows to the campaign's own stages after rendering (nothing is lost, it is only slower).
    Made in the flow's thread; ``submit`` and ``wait`` run in the stream's thread."""

    def __init__(self, deployment: str, store: Store, campaign: str, styles: Mapping[str, Style],
                 formats: Sequence[str], styles_dir: str | None) -> None:
        self.deployment, self.store, self.campaign = deployment, store, campaign
        self.parent = current_flow_run.id
        self.logger = get_run_logger()
        self.out = store.root if store.root.startswith("s3://") else os.path.abspath(store.root)
        self.parameters = {"styles": [style.model_dump(mode="json") for style in styles.values()],
                           "formats": list(formats), "styles_dir": styles_dir}
        self.shards: list[tuple[str, list[dict]]] = []
        self.running: dict = {}  # flow run id -> (shard index, attempt)
        self.done: dict[int, Streamed | None] = {}
        ensure_crash_detection(load_settings().shard_stale_seconds, "check_shard")

    def _submit(self, index: int, attempt: int) -> None:
        from prefect.deployments import run_deployment

        shard_id, rows = self.shards[index]
        run = run_deployment(
            self.deployment, timeout=0, as_subflow=True, tags=["shard", "check"],
            flow_run_name=f"{self.campaign}-check-{shard_id[:8]}-{attempt}",
            idempotency_key=f"{self.parent}:{shard_id}:{attempt}" if self.parent else None,
            parameters={"out": self.out, "campaign": self.campaign, "rows": rows, **self.parameters})
        self.running[run.id] = (index, attempt)

    def submit(self, rows: Sequence[RowWork]) -> None:
        shard_id = sha256_text("\n".join(work.row for work in rows))[:16]
        self.shards.append((shard_id, [work.to_dict() for work in rows]))
        self._submit(len(self.shards) - 1, 1)
        self._poll()

    def _poll(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        if not self.running:
            return
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(self.running))))
        for run in runs:
            state = run.state
            if state is None or not state.is_final():
                continue
            index, attempt = self.running.pop(run.id)
            if state.is_crashed() and attempt < SHARD_ATTEMPTS:
                self.logger.warning("check shard %s (flow run %s) crashed: %s; running it again",
                                    self.shards[index][0], run.name, state.message)
                self._submit(index, attempt + 1)
                continue
            self.done[index] = self._report(index, run, state)

    def _report(self, index: int, run, state) -> Streamed | None:
        key = shard_report_key(str(run.id))
        if state.is_completed() and self.store.exists(key):
            record = read_document(self.store, key, CheckShardReport)
            return Streamed(results={r.job_key: QAResult.from_dict(r.model_dump()) for r in record.results},
                            rows={row: list(keys) for row, keys in record.checked.items()},
                            exports={(e.asset_id, e.variant): (e.identity, list(e.rows)) for e in record.exports})
        self.logger.warning("check shard %s (flow run %s) ended %s (%s): its rows are checked and exported by the "
                            "campaign itself", self.shards[index][0], run.name, state.name,
                            state.message or "no report")
        return None

    def wait(self) -> list[Streamed]:
        while self.running:
            time.sleep(POLL_SECONDS)
            self._poll()
        return [part for _index, part in sorted(self.done.items()) if part is not None]
