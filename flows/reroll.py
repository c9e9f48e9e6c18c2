"""A designer's reroll starts the campaign flow: the review app records the request and never
renders. The campaign's run (``flows.campaign``) renders pending rerolls in its own render pass
(on the GPU pool through shards when configured), checks and queues them.

How the flow is started follows how the campaign's latest run was (``<campaign>/launch.json``):
a deployment run starts a new run of that deployment (Prefect server + workers); otherwise the
review server's background worker runs the flow in its own process, one run at a time, and
rerolls asked for meanwhile join the next run. A campaign that never ran has nothing to reroll.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from flows.runtime import in_flow_run
from plan.jobs import RenderJob
from store import open_store
from store.documents import CampaignLaunch, DocumentError, read_document, write_document
from store.keys import launch_key

LOG = logging.getLogger("brandbatch.reroll")
PATH_PARAMETERS = ("sheet", "out", "styles")


def launch_of(out: str, campaign: str) -> CampaignLaunch | None:
    """How ``campaign``'s latest run was started; None when it never ran (under ``out``)."""
    try:
        return read_document(open_store(out), launch_key(campaign), CampaignLaunch)
    except FileNotFoundError:
        return None


def record_launch(out: str, campaign: str, parameters: dict) -> None:
    """Recorded by every campaign run (written only when it changed), so a reroll can start the
    flow again the same way (a deployment's run, else a run in a process: no Prefect import outside a flow run)."""
    name, job_variables = None, {}
    if in_flow_run():
        from prefect.runtime import deployment, flow_run

        if deployment.id:
            name, job_variables = f"{flow_run.flow_name}/{deployment.name}", dict(flow_run.job_variables or {})
    launch = CampaignLaunch(campaign=campaign, parameters=parameters, cwd=os.getcwd(), deployment=name,
                            job_variables=job_variables)
    store = open_store(out)
    try:
        if read_document(store, launch_key(campaign), CampaignLaunch) == launch:
            return  # a rerun started the same way writes nothing
    except (FileNotFoundError, DocumentError):
        pass  # none yet, or damaged: write it
    write_document(store, launch_key(campaign), launch)


def local_parameters(launch: CampaignLaunch) -> dict:
    """The launch's parameters with relative local paths made absolute (from the run's folder)."""
    params = dict(launch.parameters)
    for name in PATH_PARAMETERS:
        value = params.get(name)
        if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
            params[name] = str(Path(launch.cwd) / value)
    return params


def start_deployment_run(launch: CampaignLaunch) -> str:
    """A new run of the launch's deployment with the same parameters and job variables, tagged
    ``reroll`` (no review wait: the rerolls are queued and the run ends); returns its flow run id."""
    from prefect.deployments import run_deployment

    run = run_deployment(launch.deployment, parameters={**launch.parameters, "wait_for_review": None},
                         job_variables=launch.job_variables or None, timeout=0, tags=["reroll"], as_subflow=False)
    return str(run.id)


class BackgroundRuns:
    """The review server's background worker: runs ``run(campaign)`` in one thread, one at a time;
    a campaign asked for while it runs is run once more afterwards (its new rerolls join)."""

    def __init__(self, run: Callable[[str], object]) -> None:
        self._run, self._pending, self._cv = run, [], threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self.finished = 0  # runs done

    def submit(self, campaign: str) -> None:
        with self._cv:
            if campaign not in self._pending:
                self._pending.append(campaign)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="brandbatch-rerolls", daemon=True)
                self._thread.start()
            self._cv.notify()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or running (within ``timeout`` seconds)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending)
                campaign = self._pending.pop(0)
                self._busy = True
            try:
                self._run(campaign)
            except Exception:  # noqa: BLE001 - one failed run must not stop the worker
                LOG.exception("the reroll run of %s failed; its rerolls stay requested for the next run", campaign)
            finally:
                with self._cv:
                    self._busy = False
                    self.finished += 1
                    self._cv.notify_all()


class Reroller:
    """What the review app calls (after its response) with the jobs of a reroll it recorded:
    start the campaign flow of their campaign (see the module's docstring). ``background``
    runs the flow in this process when the campaign has no deployment to start."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.background = BackgroundRuns(self._run_in_process)

    def _run_in_process(self, campaign: str) -> None:
        from flows.batch import campaign_batch
        from flows.runtime import run_flow

        launch = launch_of(self.out, campaign)
        if launch is not None:  # no temporary Prefect server without one
            run_flow("flows.campaign:campaign_batch", campaign_batch, **local_parameters(launch))

    def __call__(self, jobs: Sequence[RenderJob]) -> None:
        from prefect.settings import PREFECT_API_URL

        for campaign in dict.fromkeys(job.campaign for job in jobs):
            launch = launch_of(self.out, campaign)
            if launch is None:
                LOG.warning("%s has no recorded run under %s: its rerolls render in its next run", campaign, self.out)
            elif launch.deployment and PREFECT_API_URL.value():
                run_id = start_deployment_run(launch)
                LOG.info("reroll of %s: started run %s of deployment %s", campaign, run_id, launch.deployment)
            else:
                self.background.submit(campaign)
