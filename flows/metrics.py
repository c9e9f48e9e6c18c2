"""Run metrics as Prefect artifacts: the run's metrics (markdown), the campaign's runs and dead
letters (tables), and a progress bar for the run. The sums and the formatting are in qa/metrics.py.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from qa.metrics import CampaignMetrics, RunRecord, dead_letter_rows, metrics_markdown, run_rows
from flows.runtime import in_flow_run
from store.documents import DeadLetter

T = TypeVar("T")
_NOTHING = object()


def artifact_key(prefix: str, campaign: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    slug = "".join(c if c.isalnum() and c.isascii() else "-" for c in campaign.lower()).strip("-") or "campaign"
    return f"{prefix}-{slug}"


def publish_artifacts(run: RunRecord, camp: CampaignMetrics, runs: Sequence[RunRecord],
                      letters: Sequence[DeadLetter]) -> None:
    """The run's metrics (markdown), the campaign's run history and dead letters (tables); nothing
    outside a flow run (the run records and report under the output folder hold the same)."""
    if not in_flow_run():
        return
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    name = camp.campaign
    create_markdown_artifact(metrics_markdown(run, camp, letters), key=artifact_key("metrics", name),
                             description=f"Run and campaign metrics of {name}")
    create_table_artifact(run_rows(runs) or [{"runs": "none recorded"}], key=artifact_key("runs", name),
                          description=f"Recorded runs of {name}, newest first")
    create_table_artifact(dead_letter_rows(letters) or [{"dead letters": "none"}],
                          key=artifact_key("dead-letters", name),
                          description=f"Jobs of {name} that failed and have not rendered since")


class LatestOnly(Generic[T]):
    """Posts values in a background thread, newest first: ``put`` never waits (a value not posted
    yet is replaced by the next one), ``flush`` waits until the last value put is posted and
    raises what posting failed with since the last flush. The thread (in a copy of the caller's
    context) runs while a value waits and ends once it has caught up."""

    def __init__(self, post: Callable[[T], None]) -> None:
        self._post = post
        self._cond = threading.Condition()
        self._value: object = _NOTHING
        self._running = False
        self._error: BaseException | None = None

    def put(self, value: T) -> None:
        with self._cond:
            self._value = value
            if not self._running:
                self._running = True
                threading.Thread(target=contextvars.copy_context().run, args=(self._run,), name="latest-only",
                                 daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._cond:
                value, self._value = self._value, _NOTHING
                if value is _NOTHING:
                    self._running = False
                    self._cond.notify_all()
                    return
            try:
                self._post(value)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - raised by flush
                with self._cond:
                    self._error = self._error or exc

    def flush(self) -> None:
        with self._cond:
            while self._running:
                self._cond.wait()
            error, self._error = self._error, None
        if error is not None:
            raise error


class RunProgress:
    """A Prefect progress artifact (``progress-<campaign>``) for one run, made just before the
    render stage: ``render_done`` (an ``on_done`` callback) moves it through rendering, one API
    call per whole percent at most, made in the background (``LatestOnly``: the renderer never
    waits for the server); ``render_finished`` notes the render stage's wall-clock seconds;
    ``stage`` moves it after that, and returns once the server has it. Outside a flow run there
    is no artifact to move."""

    RENDER = (5.0, 85.0)  # the share of the bar the render stage fills

    def __init__(self, campaign: str, render_jobs: int) -> None:
        self.total = render_jobs
        self.done = 0
        self.render_started = time.monotonic()
        self.render_seconds = 0.0
        self.shown = self.RENDER[0]
        self.id = None
        self._poster: LatestOnly[tuple[float, str]] | None = None
        if in_flow_run():
            from prefect.artifacts import create_progress_artifact, update_progress_artifact

            self.id = create_progress_artifact(self.shown, key=artifact_key("progress", campaign),
                                               description=f"campaign_batch {campaign}: planned, {render_jobs} to render")
            self._poster = LatestOnly(lambda shown: update_progress_artifact(self.id, shown[0], description=shown[1]))

    def _show(self, percent: float, description: str) -> None:
        self.shown = percent
        if self._poster is not None:
            self._poster.put((percent, description))

    def stage(self, percent: float, description: str) -> None:
        self._show(percent, description)
        if self._poster is not None:
            self._poster.flush()

    def render_finished(self) -> None:
        self.render_seconds = time.monotonic() - self.render_started
        self.stage(self.RENDER[1], "QA")

    def render_done(self, _key: str = "") -> None:
        self.done = min(self.done + 1, self.total)  # a retried render task reports its jobs again
        low, high = self.RENDER
        percent = low + (high - low) * self.done / max(self.total, 1)
        if int(percent) > int(self.shown) or self.done == self.total:
            self._show(percent, f"rendering: {self.done} of {self.total} jobs finished")


