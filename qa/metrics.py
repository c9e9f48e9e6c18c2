"""Run and campaign metrics: throughput, GPU-seconds, time per image, planning blocks, QA
verdicts, error codes; as tables for ``report.html`` and markdown for the Prefect artifacts.

A run that attempted render work leaves one record, ``<campaign>/runs/<start>-<run id>.json``
(written once, never changed). Campaign metrics are computed from those records plus the
campaign's current state (plan, QA results, dead letters), so a rerun that renders nothing
records nothing and the report stays byte-identical. The sums and the formatting live here;
flows/metrics.py publishes them as Prefect artifacts.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from plan.jobs import RenderJob
from plan.planner import CampaignPlan
from qa.report import Table
from qa.verdicts import VERDICTS, QAResult
from render.deadletters import save_dead_letters, update_dead_letters
from render.stage import RenderReport
from store import documents
from store.base import Store
from store.documents import DeadLetter, read_document, write_document
from store.keys import run_record_key, runs_prefix

RUNS_SHOWN = 30  # newest recorded runs listed in report.html and the runs artifact (totals use all)


@dataclass(frozen=True)
class PlanBlocks:
    """Sheet rows planned and rows planning refused (any problem), banned-term rows among them."""

    valid: int
    blocked: int
    banned: int

    @property
    def rate(self) -> float | None:
        total = self.valid + self.blocked
        return self.blocked / total if total else None

    @property
    def banned_rate(self) -> float | None:
        total = self.valid + self.blocked
        return self.banned / total if total else None


def plan_blocks(plan: CampaignPlan) -> PlanBlocks:
    blocked: set[int] = set()
    banned: set[int] = set()
    for problem in plan.problems:
        if problem.row is None:
            continue
        blocked.add(problem.row)
        if problem.code == "banned_term":
            banned.add(problem.row)
    return PlanBlocks(len(plan.rows), len(blocked), len(banned))


def verdict_counts(results: Sequence[QAResult]) -> dict[str, int]:
    counts = Counter(r.verdict for r in results)
    return {v: counts.get(v, 0) for v in VERDICTS}


def percentile(values: Sequence[float], q: int) -> float | None:
    """The ``q``-th percentile (1 to 99) by linear interpolation between the closest ranks, as
    numpy's default (whose percentile imports numpy.ma: ~30 ms of every report); None for none."""
    if len(values) < 2:
        return float(values[0]) if len(values) else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


class _ImageTimes:
    """p50/p95 seconds per image, for records with an ``image_seconds`` list."""

    image_seconds: list[float]

    @property
    def p50(self) -> float | None:
        return percentile(self.image_seconds, 50)

    @property
    def p95(self) -> float | None:
        return percentile(self.image_seconds, 95)


class RunRecord(documents.RunRecord, _ImageTimes):
    """A stored run record (``store.documents.RunRecord``) with the figures derived from it."""

    @property
    def images_per_hour(self) -> float | None:
        return self.rendered / self.render_seconds * 3600 if self.render_seconds > 0 else None

    @property
    def blocks(self) -> PlanBlocks:
        return PlanBlocks(self.rows_valid, self.rows_blocked, self.rows_banned)

    @property
    def key(self) -> str:
        return run_record_key(self.campaign, self.started, self.run_id)


def run_record(*, campaign: str, run_id: str, mode: str, started: dt.datetime, finished: dt.datetime,
               render_seconds: float, jobs: int, report: RenderReport, blocks: PlanBlocks, results: Sequence[QAResult],
               export_rows: Sequence[Mapping] = ()) -> RunRecord:
    failed = Counter(f.reason for f in report.failed)
    return RunRecord(
        campaign=campaign, run_id=run_id, mode=mode,
        started=started.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        wall_seconds=round(max((finished - started).total_seconds(), 0.0), 3),
        render_seconds=round(max(render_seconds, 0.0), 3), jobs=jobs,
        rendered=len(report.rendered), cached=len(report.cached), failed=dict(sorted(failed.items())),
        gpu_seconds=round(report.gpu_seconds, 3),
        image_seconds=[round(report.job_seconds[k], 4) for k in report.rendered if k in report.job_seconds],
        rows_valid=blocks.valid, rows_blocked=blocks.blocked, rows_banned=blocks.banned,
        verdicts=verdict_counts(results),
        export_failed=sum(1 for row in export_rows if row.get("status") == "failed"),
    )


def worth_recording(record: RunRecord) -> bool:
    """Only runs that rendered or failed something are kept: a rerun that changed nothing
    leaves the campaign's files as they were (its metrics still go to the Prefect artifacts)."""
    return record.rendered > 0 or bool(record.failed)


def save_run(store: Store, record: RunRecord) -> str:
    write_document(store, record.key, record, overwrite=False)
    return record.key


def load_runs(store: Store, campaign: str) -> list[RunRecord]:
    """Every recorded run of the campaign, oldest first. A record that cannot be read is a
    ``DocumentError`` naming it."""
    records = [read_document(store, key, RunRecord) for key in store.list(runs_prefix(campaign))
               if key.endswith(".json")]
    return sorted(records, key=lambda r: (r.started, r.run_id))


@dataclass(frozen=True)
class CampaignMetrics(_ImageTimes):
    """Over every recorded run (throughput, GPU time, time per image) and the campaign as it
    stands now (planning blocks, QA verdicts, open dead letters by reason)."""

    campaign: str
    runs: int
    images: int
    render_seconds: float
    gpu_seconds: float
    image_seconds: list[float]
    blocks: PlanBlocks
    verdicts: dict[str, int]
    dead_letters: dict[str, int] = field(default_factory=dict)  # reason code -> open dead letters

    @property
    def images_per_hour(self) -> float | None:
        return self.images / self.render_seconds * 3600 if self.render_seconds > 0 else None


def campaign_metrics(campaign: str, runs: Sequence[RunRecord], blocks: PlanBlocks, results: Sequence[QAResult],
                     letters: Sequence[DeadLetter]) -> CampaignMetrics:
    return CampaignMetrics(
        campaign=campaign, runs=len(runs), images=sum(r.rendered for r in runs),
        render_seconds=sum(r.render_seconds for r in runs), gpu_seconds=sum(r.gpu_seconds for r in runs),
        image_seconds=[s for r in runs for s in r.image_seconds], blocks=blocks, verdicts=verdict_counts(results),
        dead_letters=dict(sorted(Counter(x.reason for x in letters).items())),
    )


# ---- formatting (markdown artifact, table artifacts, report tables) ----

def _n(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"


def metric_rows(run: RunRecord | None, camp: CampaignMetrics) -> list[dict[str, str]]:
    """One row per metric: ``metric``, ``this run`` (when given), ``campaign``."""
    rows: list[tuple[str, str, str]] = []
    if run is not None:
        rows.append(("render jobs (rendered / cached / failed)",
                     f"{run.jobs} ({run.rendered} / {run.cached} / {sum(run.failed.values())})",
                     f"{camp.images} rendered over {camp.runs} recorded run(s)"))
    else:
        rows.append(("images rendered", "", f"{camp.images} over {camp.runs} recorded run(s)"))
    r = run
    rows += [
        ("images / hour (render stage, wall clock)", _n(r.images_per_hour) if r else "", _n(camp.images_per_hour)),
        ("GPU-seconds", _n(r.gpu_seconds, 4) if r else "", _n(camp.gpu_seconds, 4)),
        ("seconds per image p50", _n(r.p50) if r else "", _n(camp.p50)),
        ("seconds per image p95", _n(r.p95) if r else "", _n(camp.p95)),
        ("rows blocked by planning", (f"{r.rows_blocked} of {r.rows_valid + r.rows_blocked} "
                                      f"({_pct(r.blocks.rate)})") if r else "",
         f"{camp.blocks.blocked} of {camp.blocks.valid + camp.blocks.blocked} ({_pct(camp.blocks.rate)})"),
        ("rows blocked by banned terms", f"{r.rows_banned} ({_pct(r.blocks.banned_rate)})" if r else "",
         f"{camp.blocks.banned} ({_pct(camp.blocks.banned_rate)})"),
        ("QA verdicts", _counts(r.verdicts) if r else "", _counts(camp.verdicts)),
        ("render error codes", _counts(r.failed) if r else "", f"open dead letters: {_counts(camp.dead_letters)}"),
    ]
    if run is None:
        return [{"metric": m, "campaign": c} for m, _, c in rows]
    return [{"metric": m, "this run": t, "campaign": c} for m, t, c in rows]


def run_rows(runs: Sequence[RunRecord]) -> list[dict[str, str]]:
    """The newest ``RUNS_SHOWN`` recorded runs, one row each, newest first."""
    return [{"started (UTC)": r.started.replace("+00:00", "Z"), "mode": r.mode, "jobs": str(r.jobs),
             "rendered": str(r.rendered), "cached": str(r.cached), "failed": _counts(r.failed),
             "wall s": _n(r.wall_seconds, 4), "render s": _n(r.render_seconds, 4), "GPU s": _n(r.gpu_seconds, 4), "images/h": _n(r.images_per_hour),
             "p50 s": _n(r.p50), "p95 s": _n(r.p95), "blocked rows": str(r.rows_blocked),
             "QA": _counts(r.verdicts)} for r in reversed(runs[-RUNS_SHOWN:])]


def dead_letter_rows(letters: Sequence[DeadLetter]) -> list[dict[str, str]]:
    return [{"asset": x.asset_id, "row": str(x.row), "variant": str(x.variant), "aspect": x.aspect,
             "reason": x.reason, "attempts": str(x.attempts), "last failed (UTC)": x.last_failed.replace("+00:00", "Z"),
             "message": x.message, "job key": x.job_key[:12]} for x in letters]


def _table(title: str, rows: list[dict[str, str]], empty: str) -> Table:
    columns = tuple(rows[0]) if rows else ()
    return Table(title, columns, [tuple(row[c] for c in columns) for row in rows], empty)


def report_tables(camp: CampaignMetrics, runs: Sequence[RunRecord], letters: Sequence[DeadLetter]) -> list[Table]:
    """The report's metric sections; only recorded state, so the report is stable across no-op reruns."""
    return [
        _table("Campaign metrics", metric_rows(None, camp), ""),
        _table(f"Runs (newest {RUNS_SHOWN} of {len(runs)})" if len(runs) > RUNS_SHOWN else "Runs", run_rows(runs),
               "No run has rendered anything yet."),
        _table("Dead letters", dead_letter_rows(letters),
               "None: every planned job that was tried has rendered."),
    ]


def _markdown_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    columns = list(rows[0])
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows])


def metrics_markdown(run: RunRecord, camp: CampaignMetrics, letters: Sequence[DeadLetter]) -> str:
    lines = [f"# Metrics: {camp.campaign}", "",
             f"Run {run.run_id} ({run.mode}), started {run.started}, {_n(run.wall_seconds, 4)} s.", ""]
    lines += _markdown_table(metric_rows(run, camp))
    lines += ["", f"## Dead letters ({len(letters)})", ""]
    lines += _markdown_table(dead_letter_rows(letters)) if letters else ["None."]
    if letters:
        lines += ["", "Retry them alone with `brandbatch run SHEET --retry-failed`."]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ClosedRun:
    """What the end of a run leaves: the dead letters now open, this run's record (kept only if
    ``worth_recording``), every recorded run and the campaign's totals."""

    letters: list[DeadLetter]
    record: RunRecord
    runs: list[RunRecord]
    totals: CampaignMetrics


def close_run(store: Store, plan: CampaignPlan, jobs: Sequence[RenderJob], report: RenderReport,
              results: Sequence[QAResult], export_rows: Sequence[Mapping], letters: Sequence[DeadLetter], *,
              started: dt.datetime, render_seconds: float, run_id: str, retry_failed: bool, whole_plan: bool
              ) -> ClosedRun:
    """The end of a run: update the dead letters, record the run (if it did render work) and
    sum the campaign. ``jobs``: what the render pass was given; ``whole_plan``: the plan covers
    the whole sheet (no ``--limit``), so dead letters it no longer plans are dropped."""
    campaign = plan.campaign
    letters = update_dead_letters(letters, report, jobs, now=dt.datetime.now(dt.timezone.utc),
                                  planned={job.key for job in plan.jobs} if whole_plan else None)
    save_dead_letters(store, campaign, letters)
    blocks = plan_blocks(plan)
    record = run_record(campaign=campaign, run_id=run_id, mode="retry-failed" if retry_failed else "run",
                        started=started, finished=dt.datetime.now(dt.timezone.utc), render_seconds=render_seconds,
                        jobs=len(jobs), report=report,
                        blocks=blocks, results=results, export_rows=export_rows)
    if worth_recording(record):
        save_run(store, record)
    runs = load_runs(store, campaign)
    return ClosedRun(letters, record, runs, campaign_metrics(campaign, runs, blocks, results, letters))
