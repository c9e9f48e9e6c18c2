"""Dead letters: render jobs of a campaign that failed and have not rendered since.

Stored as ``<campaign>/dead-letters.json`` (one entry per job key, sorted by asset, variant,
aspect). A failed job is added (or its ``attempts`` counted up, its reason and message
replaced by the latest); a job that renders, or is found already rendered, leaves the list.
``brandbatch run --retry-failed`` renders only the jobs listed here. The file is rewritten
only when its content changes, so a rerun that changes nothing touches nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, replace

from plan.errors import InputError, Problem
from plan.jobs import RenderJob
from render.stage import RenderReport, render_key
from store.base import Store

FORMAT = 1


@dataclass(frozen=True)
class DeadLetter:
    """A job that failed to render. ``reason``: the render failure code (model_error, nan_output,
    black_output, oom, budget, error); ``attempts``: how many runs tried it and failed."""

    job_key: str
    asset_id: str
    row: int
    variant: int
    aspect: str
    reason: str
    message: str
    attempts: int
    first_failed: str  # ISO 8601 UTC
    last_failed: str

    @classmethod
    def from_dict(cls, data: dict) -> DeadLetter:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def dead_letters_key(campaign: str) -> str:
    return f"{campaign}/dead-letters.json"


def _order(letter: DeadLetter) -> tuple:
    return (letter.asset_id, letter.variant, letter.aspect, letter.job_key)


def update_dead_letters(previous: Iterable[DeadLetter], report: RenderReport, jobs: Sequence[RenderJob],
                        *, now: dt.datetime, planned: Collection[str] | None = None) -> list[DeadLetter]:
    """The campaign's dead letters after a render pass over ``jobs`` that gave ``report``.

    Failures are added or counted up; jobs rendered or cached leave the list; entries this
    pass did not touch stay. With ``planned`` (every job key of a whole-sheet plan), entries
    for jobs the sheet no longer plans are dropped too: nothing would ever render them."""
    by_key = {job.key: job for job in jobs}
    letters = {letter.job_key: letter for letter in previous}
    for key in (*report.rendered, *report.cached):
        letters.pop(key, None)
    stamp = now.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    for failure in report.failed:
        old = letters.get(failure.job_key)
        if old is not None:
            letters[failure.job_key] = replace(old, reason=failure.reason, message=failure.message,
                                               attempts=old.attempts + 1, last_failed=stamp)
            continue
        job = by_key.get(failure.job_key)
        if job is None:
            raise ValueError(f"render failure for job {failure.job_key[:12]} that is not among the jobs given")
        letters[failure.job_key] = DeadLetter(job.key, job.row_key, job.row, job.variant, job.aspect,
                                              failure.reason, failure.message, 1, stamp, stamp)
    if planned is not None:
        letters = {key: letter for key, letter in letters.items() if key in planned}
    return sorted(letters.values(), key=_order)


def dumps(campaign: str, letters: Sequence[DeadLetter]) -> bytes:
    body = {"format": FORMAT, "campaign": campaign, "dead_letters": [asdict(x) for x in sorted(letters, key=_order)]}
    return (json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def load_dead_letters(store: Store, campaign: str) -> list[DeadLetter]:
    """The stored list ([] when there is none). A file that cannot be read is an error naming it."""
    key = dead_letters_key(campaign)
    try:
        data = store.get(key)
    except FileNotFoundError:
        return []
    try:
        body = json.loads(data)
        if body.get("format") != FORMAT:
            raise ValueError(f"format must be {FORMAT} but is {body.get('format')!r}")
        return [DeadLetter.from_dict(entry) for entry in body["dead_letters"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError([Problem(store.location(key), f"not a dead-letter list ({type(exc).__name__}: {exc}); "
                                                       "fix or delete the file")]) from None


def save_dead_letters(store: Store, campaign: str, letters: Sequence[DeadLetter]) -> bool:
    """Write the list if it differs from what is stored (an empty list removes the file).
    Returns whether anything changed."""
    key = dead_letters_key(campaign)
    if not letters:
        if not store.exists(key):
            return False
        store.delete(key)
        return True
    data = dumps(campaign, letters)
    try:
        if store.get(key) == data:
            return False
    except FileNotFoundError:
        pass
    store.put(key, data, content_type="application/json", overwrite=True)
    return True


def retry_jobs(jobs: Sequence[RenderJob], letters: Iterable[DeadLetter]) -> list[RenderJob]:
    """The planned jobs that are dead letters (in plan order): what ``--retry-failed`` renders."""
    keys = {letter.job_key for letter in letters}
    return [job for job in jobs if job.key in keys]


def rendered_jobs(jobs: Sequence[RenderJob], report: RenderReport, store: Store) -> list[RenderJob]:
    """The jobs that have a render after a pass that gave ``report``: rendered or cached by the
    pass, or (jobs the pass did not attempt, e.g. under ``--retry-failed``) already in the store."""
    ok = {*report.rendered, *report.cached}
    attempted = ok | {failure.job_key for failure in report.failed}
    return [job for job in jobs if job.key in ok or (job.key not in attempted and store.exists(render_key(job.key)))]
