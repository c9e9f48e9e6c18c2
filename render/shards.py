"""Split render jobs into shards for many workers, and merge the shards' reports back.

A shard is a list of jobs of one render group (same model, size, scheduler, steps, guidance:
one resolution bucket of one model), at most ``max_jobs`` long, so a worker loads one
pipeline per shard and pixels never depend on the split (each image has its own generator).
Splitting is deterministic: the same jobs give the same shards in the same order.
Expansions (creative families) outpaint their stored master, so ``render_waves`` splits jobs
into waves: every master's shard runs (and finishes) in a wave before its expansions' shards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from plan.jobs import RenderJob, sha256_text
from render.stage import RenderFailure, RenderReport
from store.documents import RenderFailureRecord, RenderReportRecord


@dataclass(frozen=True)
class Shard:
    """``id``: the first 16 hex digits of the sha256 of the shard's job keys (stable across runs
    with the same jobs)."""

    id: str
    jobs: tuple[RenderJob, ...]


def split_shards(jobs: Sequence[RenderJob], max_jobs: int) -> list[Shard]:
    """Jobs -> shards of one render group each, at most ``max_jobs`` long, balanced within a
    group (a group of 10 with ``max_jobs=8`` gives 5 + 5, not 8 + 2). Duplicate jobs (same key)
    are rendered once. Groups keep the order in which they first appear; jobs keep their order."""
    if max_jobs < 1:
        raise ValueError(f"max_jobs (jobs per shard) must be >= 1 but is {max_jobs}")
    groups: dict[tuple, dict[str, RenderJob]] = {}
    for job in jobs:
        groups.setdefault(job.group, {}).setdefault(job.key, job)
    shards = []
    for members in groups.values():
        unique = list(members.values())
        count = math.ceil(len(unique) / max_jobs)
        size, extra = divmod(len(unique), count)
        start = 0
        for index in range(count):
            end = start + size + (1 if index < extra else 0)
            part = tuple(unique[start:end])
            shards.append(Shard(sha256_text("\n".join(j.key for j in part))[:16], part))
            start = end
    return shards


def render_waves(jobs: Sequence[RenderJob]) -> list[list[RenderJob]]:
    """Jobs in the waves they must run in: masters and independent renders, then expansions
    (empty waves left out)."""
    waves = [[job for job in jobs if not job.is_expansion], [job for job in jobs if job.is_expansion]]
    return [wave for wave in waves if wave]


def split_budget(total: float | None, shards: Sequence[Shard], *, whole: bool) -> list[float | None]:
    """Share a run budget among shards in proportion to their job counts, never exceeding
    ``total`` in sum (``whole``: integer shares, remainders to the first shards)."""
    if total is None:
        return [None] * len(shards)
    count = sum(len(s.jobs) for s in shards)
    if not whole:
        return [total * len(s.jobs) / count for s in shards]
    shares = [int(total) * len(s.jobs) // count for s in shards]
    for index in range(int(total) - sum(shares)):
        shares[index % len(shares)] += 1
    return shares


def merge_reports(reports: Sequence[RenderReport]) -> RenderReport:
    """One report for many shards: lists concatenated in shard order, seconds summed, dicts joined."""
    merged = RenderReport()
    for report in reports:
        merged.rendered.extend(report.rendered)
        merged.cached.extend(report.cached)
        merged.failed.extend(report.failed)
        merged.gpu_seconds += report.gpu_seconds
        merged.job_seconds.update(report.job_seconds)
        merged.damaged.update(report.damaged)
    return merged


def report_to_record(report: RenderReport) -> RenderReportRecord:
    """The stored form of a report (a shard writes it to the store for the campaign to read)."""
    return RenderReportRecord(
        rendered=list(report.rendered), cached=list(report.cached),
        failed=[RenderFailureRecord(job_key=f.job_key, reason=f.reason, message=f.message) for f in report.failed],
        gpu_seconds=report.gpu_seconds, job_seconds=dict(report.job_seconds), damaged=dict(report.damaged))


def report_from_record(record: RenderReportRecord) -> RenderReport:
    return RenderReport(rendered=list(record.rendered), cached=list(record.cached),
                        failed=[RenderFailure(f.job_key, f.reason, f.message) for f in record.failed],
                        gpu_seconds=record.gpu_seconds, job_seconds=dict(record.job_seconds),
                        damaged=dict(record.damaged))
