"""Dead letters: render jobs of a campaign that failed and have not rendered since.

Stored as ``<campaign>/dead-letters.json`` (one entry per job key, sorted by asset, variant,
aspect). A failed job is added (or its ``attempts`` counted up, its reason and message
replaced by the latest); a job that renders, or is found already rendered, leaves the list.
``brandbatch run --retry-failed`` renders only the jobs listed here. The file is rewritten
only when its content changes, so a rerun that changes nothing touches nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence

from plan.jobs import RenderJob
from render.stage import RenderReport
from store.base import Store
from store.documents import DeadLetter, DeadLetters, dump_document, read_document
from store.keys import dead_letters_key, render_key


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
            letters[failure.job_key] = old.model_copy(update=dict(
                reason=failure.reason, message=failure.message, attempts=old.attempts + 1, last_failed=stamp))
            continue
        job = by_key.get(failure.job_key)
        if job is None:
            raise ValueError(f"render failure for job {failure.job_key[:12]} that is not among the jobs given")
        letters[failure.job_key] = DeadLetter(
            job_key=job.key, asset_id=job.row_key, row=job.row, variant=job.variant, aspect=job.aspect,
            reason=failure.reason, message=failure.message, attempts=1, first_failed=stamp, last_failed=stamp)
    if planned is not None:
        letters = {key: letter for key, letter in letters.items() if key in planned}
    return sorted(letters.values(), key=_order)


def load_dead_letters(store: Store, campaign: str) -> list[DeadLetter]:
    """The stored list ([] when there is none). A file that cannot be read is a ``DocumentError``
    naming it."""
    try:
        return list(read_document(store, dead_letters_key(campaign), DeadLetters).dead_letters)
    except FileNotFoundError:
        return []


def save_dead_letters(store: Store, campaign: str, letters: Sequence[DeadLetter]) -> bool:
    """Write the list if it differs from what is stored (an empty list removes the file).
    Returns whether anything changed."""
    key = dead_letters_key(campaign)
    if not letters:
        if not store.exists(key):
            return False
        store.delete(key)
        return True
    data = dump_document(DeadLetters(campaign=campaign, dead_letters=sorted(letters, key=_order)))
    try:
        if store.get(key) == data:
            return False
    except FileNotFoundError:
        pass
    store.put(key, data, content_type="application/json", overwrite=True)  # the bytes compared above
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
