"""The review queue store (SQLAlchemy Core): one row per asset variant, an append-only audit log.

An *item* is one asset variant (campaign, asset id, variant) across its aspect renders. Its
id is a 32-hex digest of those three, so re-queuing a campaign finds the same item. States:
``queued -> approved | rejected | reroll_requested``; a reroll's new renders come back through
:meth:`ReviewQueue.enqueue` and put the item back to ``queued``. Every change of state is a
row in ``review_decisions`` (who, when in UTC, what, reason code, note, approval id), never
updated or deleted. Each item carries a ``version`` counter: a decision names the version it
was made on, and loses with :class:`Conflict` if someone else decided first.

SQLite file ``<out>/review.sqlite3`` by default; any SQLAlchemy URL via ``BRANDBATCH_REVIEW_DB``
(tested on SQLite and PostgreSQL with ``postgresql+psycopg://``). The tables below are the
schema's newest revision; ``review/migrations`` (alembic) creates them and upgrades older queues.

Lost state fails closed: every change is also written, before its transaction commits, to the
append-only decision log in the artefact store (``review.decision_log``). A queue that is behind
its log (a database lost, emptied or restored from an old copy) or ahead of it raises
:class:`ReviewStateLost` naming both and the recovery command, and a database that cannot be
read raises :class:`ReviewStoreDamaged` naming it; neither queues, approves or exports anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from plan.jobs import RenderJob, reseed, sha256_text
from plan.sheet import MAX_CELL_CHARS
from qa.verdicts import QAResult
from review.approvals import AUTO_REVIEWER, auto_approval
from review.decision_log import RECOVERY, DecisionLog, LogRecord
from review.migrations import SchemaError, upgrade
from settings import load_settings, variable

State = Literal["queued", "approved", "rejected", "reroll_requested"]
STATES: tuple[State, ...] = ("queued", "approved", "rejected", "reroll_requested")
DECISIONS = ("approve", "reject", "reroll")
REASON_CODES = ("off_brand", "artifact", "wrong_product", "text_or_logo", "composition", "safety", "other")
# Why one placement of a creative does not ship (the rest do); "other" needs a note.
PLACEMENT_REASONS = ("text_too_small", "bad_crop", "logo_illegible", "off_brand", "other")
COPY_FIELDS = ("headline", "cta", "alt_text")  # what a designer may edit in review (an override; the sheet stays)
PLACEMENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
SYSTEM_REVIEWER = "brandbatch"  # records re-queues of new renders in the audit log
MAX_NOTE_CHARS = 2000
ITEM_ID = re.compile(r"^[0-9a-f]{32}$")
DB_ENV = variable("review_db")
_AFTER = {"approve": "approved", "reject": "rejected", "reroll": "reroll_requested"}

metadata = sa.MetaData()
items_table = sa.Table(
    "review_items", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("campaign", sa.String(200), nullable=False, index=True),
    sa.Column("asset_id", sa.String(100), nullable=False),
    sa.Column("variant", sa.Integer, nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("style", sa.String(100), nullable=False),
    sa.Column("style_version", sa.Integer, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("reroll", sa.Integer, nullable=False),
    sa.Column("planned", sa.String(64), nullable=False),  # digest of the reroll-0 job keys: the inputs
    sa.Column("jobs", sa.Text, nullable=False),  # JSON {aspect: RenderJob dict}
    sa.Column("verdict", sa.String(10), nullable=False),
    sa.Column("qa", sa.Text, nullable=False),  # JSON {aspect: QAResult dict}
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("approval_id", sa.String(40)),
    sa.Column("approved_by", sa.String(100)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # JSON {placement: {reason, note, by, at}}: placements a designer rejected (the rest ship)
    sa.Column("rejected_placements", sa.Text, nullable=False, server_default="{}"),
    # JSON {field: {before, after, by, at}}: headline / cta / alt_text edited in review (the sheet's stay)
    sa.Column("copy_overrides", sa.Text, nullable=False, server_default="{}"),
)
decisions_table = sa.Table(
    "review_decisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.String(32), sa.ForeignKey("review_items.id"), nullable=False, index=True),
    sa.Column("item_version", sa.Integer, nullable=False),  # the version the decision was made on
    sa.Column("reviewer", sa.String(100), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decision", sa.String(20), nullable=False),  # approve | reject | reroll | requeue
    sa.Column("reason", sa.String(40)),
    sa.Column("note", sa.Text),
    sa.Column("approval_id", sa.String(40)),
    sa.Column("job_keys", sa.Text, nullable=False),  # JSON {aspect: key} the decision was about
    sa.Column("placement", sa.String(100)),  # reject_placement / restore_placement: which one
    sa.Column("copy_change", sa.Text),  # edit_copy: JSON {field, before, after}
)
settings_table = sa.Table(
    "review_settings", metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
sessions_table = sa.Table(  # the review app's logins: a session ends here at logout, whatever the cookie says
    "review_sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 of the session id the cookie holds
    sa.Column("reviewer", sa.String(100), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)


class ReviewError(Exception):
    """Base of the queue's errors (each message says what was wrong and what is allowed)."""


class ItemNotFound(ReviewError, LookupError):
    pass


class ReviewStoreDamaged(ReviewError):
    """The queue's database cannot be read (torn, not a database, no permission)."""


class ReviewStateLost(ReviewError):
    """The queue and its decision log disagree: decisions were lost on one side."""


class Conflict(ReviewError):
    """The item changed since the reviewer looked at it (or cannot take this decision now)."""

    def __init__(self, message: str, current: Item | None = None) -> None:
        super().__init__(message)
        self.current = current


class InvalidDecision(ReviewError, ValueError):
    pass


@dataclass(frozen=True)
class Item:
    id: str
    campaign: str
    asset_id: str
    variant: int
    row: int
    style: str
    style_version: int
    prompt: str
    reroll: int
    jobs: Mapping[str, RenderJob]  # aspect -> job
    verdict: str
    qa: Mapping[str, QAResult]  # aspect -> result
    state: State
    approval_id: str | None
    approved_by: str | None
    version: int
    updated_at: dt.datetime
    rejected_placements: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)  # copy edits by field

    @property
    def job_keys(self) -> dict[str, str]:
        return {aspect: job.key for aspect, job in self.jobs.items()}

    @property
    def seeds(self) -> dict[str, int]:
        return {aspect: job.seed for aspect, job in self.jobs.items()}

    @property
    def reasons(self) -> list[str]:
        return list(dict.fromkeys(r for result in self.qa.values() for r in result.reasons))


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    item_id: str
    item_version: int
    reviewer: str
    decided_at: dt.datetime
    decision: str
    reason: str | None
    note: str | None
    approval_id: str | None
    job_keys: Mapping[str, str]
    placement: str | None = None
    copy_change: Mapping[str, str] | None = None  # edit_copy: {field, before, after}


@dataclass(frozen=True)
class ApprovedVariant:
    """What ``exports`` needs for one approved asset variant."""

    campaign: str
    asset_id: str
    row: int
    variant: int
    jobs: Mapping[str, RenderJob]  # aspect -> job (a reroll's jobs when rerolled)
    qa_verdict: str
    approval_id: str
    approved_by: str
    rejected_placements: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def job_keys(self) -> dict[str, str]:
        return {aspect: job.key for aspect, job in self.jobs.items()}

    @classmethod
    def of(cls, item: Item) -> ApprovedVariant:
        """What export needs of ``item`` (approved or not: previews draw queued items the same way)."""
        return cls(campaign=item.campaign, asset_id=item.asset_id, row=item.row, variant=item.variant, jobs=item.jobs,
                   qa_verdict=item.verdict, approval_id=item.approval_id or "", approved_by=item.approved_by or "",
                   rejected_placements=item.rejected_placements, overrides=item.overrides)


def item_id_for(campaign: str, asset_id: str, variant: int) -> str:
    return sha256_text(json.dumps(["review-item-v1", campaign, asset_id, variant]))[:32]


def check_item_id(item_id: str) -> str:
    if not isinstance(item_id, str) or not ITEM_ID.match(item_id):
        raise ItemNotFound(f"item id must be 32 lowercase hex digits but is {item_id!r}")
    return item_id


def planned_jobs(jobs: Sequence[RenderJob]) -> list[RenderJob]:
    """An asset variant's jobs as planned, before any reroll (what a campaign rerun produces)."""
    return reseed(jobs, 0)


def rerolled_jobs(jobs: Sequence[RenderJob]) -> list[RenderJob]:
    """The next reroll of an asset variant: reroll count + 1 and the seeds derived from it (a
    family's expansions follow their new master)."""
    return reseed(jobs, max(job.reroll for job in jobs) + 1)


def variant_verdict(results: Sequence[QAResult]) -> str:
    """A variant is as good as its worst render: fail > review > pass (no results: review)."""
    verdicts = {r.verdict for r in results}
    if "fail" in verdicts:
        return "fail"
    return "review" if "review" in verdicts or not verdicts else "pass"


def database_url(out: str | os.PathLike[str]) -> str:
    """``$BRANDBATCH_REVIEW_DB``, else SQLite ``<out>/review.sqlite3`` (local ``--out`` only)."""
    if url := load_settings().review_db:
        return url
    out = str(out)
    if "://" in out:
        raise ReviewError(f"--out {out!r} is not a local folder: set {DB_ENV} to a SQLAlchemy URL "
                          "(e.g. postgresql+psycopg://host/db) for the review queue")
    Path(out).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(out).resolve() / 'review.sqlite3'}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite drops the zone


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _record_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """An item row as JSON (the decision log's copy)."""
    return {name: (value.isoformat() if isinstance(value, dt.datetime) else value) for name, value in row.items()}


def _keys_json(jobs: Mapping[str, RenderJob]) -> str:
    return json.dumps({a: j.key for a, j in sorted(jobs.items())}, sort_keys=True)


class ReviewQueue:
    """Items and decisions in one database. Safe to share between threads and processes.

    ``log``: the decision log every change is also written to (``for_out`` always gives one);
    ``out``: the ``--out`` named in recovery advice."""

    def __init__(self, url: str, log: DecisionLog | None = None, *, out: str = "OUT") -> None:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}  # a server database may drop idle connections
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 30, "check_same_thread": False}}
        self.url, self.log, self.out = url, log, out
        self.engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite") and self.engine.url.database and self.engine.url.database != ":memory:":
            _create_with_umask(Path(self.engine.url.database))
        self.location = (self.engine.url.database or url) if url.startswith("sqlite") else \
            self.engine.url.render_as_string(hide_password=True)
        sa.event.listen(self.engine, "handle_error", self._damaged)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            with self.engine.connect() as conn:
                problems = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise self._damaged_error(problems[0])
        try:
            upgrade(url, self.engine)  # creates the tables, or upgrades an older queue's in place (review/migrations)
        except SchemaError as exc:
            raise ReviewError(str(exc)) from None
        except sa.exc.DBAPIError as exc:  # on the migrations' own connection
            raise self._damaged_error(exc.orig) from None

    @classmethod
    def for_out(cls, out: str | os.PathLike[str]) -> ReviewQueue:
        from store import open_store

        return cls(database_url(out), DecisionLog(open_store(str(out))), out=str(out))

    @property
    def recovery(self) -> str:
        return f"`{RECOVERY} --out {self.out}`"

    def _damaged_error(self, cause: object) -> ReviewStoreDamaged:
        return ReviewStoreDamaged(f"review queue {self.location} cannot be read ({_one_line(cause)}); nothing was "
                                  f"queued, approved or exported: rebuild it from its decision log with {self.recovery}")

    def _damaged(self, context: Any) -> None:
        """Any database failure but a constraint (used as a signal) is one line naming the queue."""
        if not context.is_pre_ping and not isinstance(context.sqlalchemy_exception, IntegrityError):
            raise self._damaged_error(context.original_exception) from None

    def verify(self, campaign: str | None = None) -> None:
        """Raise :class:`ReviewStateLost` if the queue (of ``campaign``, or all) and its decision
        log disagree on any item's version; a listing of the log, no record is read."""
        if self.log is None:
            return
        logged = self.log.versions(campaign)
        query = sa.select(items_table.c.id, items_table.c.asset_id, items_table.c.variant, items_table.c.version)
        if campaign is not None:
            query = query.where(items_table.c.campaign == campaign)
        with self.engine.connect() as conn:
            held = {r.id: r for r in conn.execute(query)}
        behind = sorted(i for i, (_c, v) in logged.items() if i not in held or held[i].version < v)
        ahead = sorted(i for i, r in held.items() if r.version > logged.get(i, ("", 0))[1])
        where = self.log.location(campaign)
        if behind:
            first = behind[0]
            now = f"version {held[first].version}" if first in held else "missing"
            raise ReviewStateLost(
                f"review queue {self.location} has lost decisions kept in its decision log {where}: "
                f"{len(behind)} item(s) behind the log (item {first}: {now} in the queue, version "
                f"{logged[first][1]} in the log); nothing was queued, approved or exported: rebuild the queue "
                f"with {self.recovery}")
        if ahead:
            first = held[ahead[0]]
            raise ReviewStateLost(
                f"decision log {where} lacks decisions the review queue {self.location} has: {len(ahead)} "
                f"item(s) ahead of the log ({first.asset_id} v{first.variant}: version {first.version} in the "
                f"queue, {logged.get(first.id, ('', 0))[1] or 'none'} in the log); nothing was queued, approved "
                f"or exported: {self.recovery} writes them back to the log")

    def _append(self, conn: sa.Connection, item_id: str, decision: Mapping[str, Any] | None) -> None:
        """Write the item's row as it is now in this transaction (and ``decision``) to the log.
        A version the log has already means this queue is behind it: fail closed."""
        if self.log is None:
            return
        row = conn.execute(sa.select(items_table).where(items_table.c.id == item_id)).mappings().one()
        record = LogRecord(item=_record_item(row), decision=_record_item(decision) if decision else None)
        if not self.log.append(record):
            raise ReviewStateLost(
                f"review queue {self.location} is behind its decision log {self.log.location(row['campaign'])}: "
                f"{row['asset_id']} v{row['variant']} has version {row['version']} logged already; nothing was "
                f"queued, approved or exported: rebuild the queue with {self.recovery}")

    def close(self) -> None:
        self.engine.dispose()

    # -- writing -------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[RenderJob], results: Mapping[str, QAResult]) -> Item:
        """Put one asset variant (its jobs at every aspect, and their QA results) in the queue.

        Idempotent: the same renders again change nothing, decisions included. Renders planned
        from the same inputs but older than the item's reroll are ignored (a campaign rerun
        does not undo a designer's reroll). New renders (a reroll's, or changed inputs) replace
        the old ones, are logged as ``requeue`` and wait for a designer again. A new item whose
        renders all pass QA is approved by ``qa-auto``; one that fails QA is rejected by
        ``qa-auto`` with reason ``qa_fail`` (designers can still reroll it).
        """
        if not jobs:
            raise InvalidDecision("enqueue needs the jobs of one asset variant, got none")
        first = jobs[0]
        by_aspect = {j.aspect: j for j in jobs}
        if len(by_aspect) != len(jobs) or any(
                (j.campaign, j.row_key, j.variant, j.reroll) != (first.campaign, first.row_key, first.variant, first.reroll)
                for j in jobs):
            raise InvalidDecision(f"enqueue takes one asset variant (one job per aspect, one reroll) but got "
                                  f"{sorted({(j.row_key, j.variant, j.aspect, j.reroll) for j in jobs})}")
        qa = {a: results[j.key] if j.key in results else
              QAResult(j.key, "review", ("qa_missing",), {}) for a, j in by_aspect.items()}
        verdict = variant_verdict(list(qa.values()))
        planned = sha256_text(json.dumps(sorted(j.key for j in planned_jobs(jobs))))
        item_id = item_id_for(first.campaign, first.row_key, first.variant)
        values = {
            "campaign": first.campaign, "asset_id": first.row_key, "variant": first.variant, "row": first.row,
            "style": first.style, "style_version": first.style_version, "prompt": first.prompt,
            "reroll": first.reroll, "planned": planned, "verdict": verdict,
            "jobs": json.dumps({a: j.to_dict() for a, j in sorted(by_aspect.items())}, sort_keys=True),
            "qa": json.dumps({a: r.to_dict() for a, r in sorted(qa.items())}, sort_keys=True),
            "updated_at": _now(),
        }
        keys = [j.key for j in jobs]
        for _attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(sa.select(items_table).where(items_table.c.id == item_id)).mappings().first()
                    if row is None:
                        self._insert(conn, item_id, values, verdict, keys)
                    elif row["planned"] == planned and (
                            first.reroll < row["reroll"] or _keys_json(by_aspect) == _keys_json(_jobs(row["jobs"]))):
                        pass  # the same renders, or older than the item's reroll
                    else:
                        conn.execute(items_table.update().where(items_table.c.id == item_id).values(
                            **values, state="queued", approval_id=None, approved_by=None,
                            version=row["version"] + 1, rejected_placements="{}"))  # judged on the old pixels
                        reason = "rerolled" if row["planned"] == planned else "inputs_changed"
                        self._log(conn, item_id, row["version"] + 1, SYSTEM_REVIEWER, "requeue", reason,
                                  None, None, by_aspect)
                break
            except IntegrityError:
                continue  # another process inserted the same item meanwhile: look again
        return self.item(item_id)

    def _insert(self, conn: sa.Connection, item_id: str, values: dict, verdict: str, keys: list[str]) -> None:
        approval = auto_approval(values["campaign"], values["asset_id"], values["variant"], keys, verdict)
        state, reason = "queued", None
        if approval is not None:
            state = "approved"
        elif verdict == "fail":
            state, reason = "rejected", "qa_fail"
        conn.execute(items_table.insert().values(
            id=item_id, **values, state=state, version=1,
            approval_id=approval.approval_id if approval else None,
            approved_by=approval.approved_by if approval else None))
        if state != "queued":
            self._log(conn, item_id, 1, AUTO_REVIEWER, "approve" if approval else "reject", reason, None,
                      approval.approval_id if approval else None, _jobs(values["jobs"]))
        else:
            self._append(conn, item_id, None)

    def _log(self, conn: sa.Connection, item_id: str, version: int, reviewer: str, decision: str,
             reason: str | None, note: str | None, approval_id: str | None, jobs: Mapping[str, RenderJob],
             placement: str | None = None, copy_change: Mapping[str, str] | None = None) -> None:
        """Record a decision in the audit table and, with the item as it is now, in the decision log."""
        values = dict(item_id=item_id, item_version=version, reviewer=reviewer, decided_at=_now(),
                      decision=decision, reason=reason, note=note, approval_id=approval_id,
                      job_keys=_keys_json(jobs), placement=placement,
                      copy_change=json.dumps(dict(copy_change), sort_keys=True) if copy_change else None)
        conn.execute(decisions_table.insert().values(**values))
        self._append(conn, item_id, values)

    def decide(self, item_id: str, reviewer: str, decision: str, reason: str | None = None,
               note: str | None = None, *, expected_version: int) -> Item:
        """Record a designer's decision on the version of the item they saw.

        ``decision``: approve | reject (needs ``reason``, one of REASON_CODES) | reroll.
        Raises :class:`Conflict` if the item is no longer at ``expected_version`` (someone
        decided first, or new renders arrived), or waits for a reroll's renders.
        """
        check_item_id(item_id)
        if decision not in DECISIONS:
            raise InvalidDecision(f"decision must be one of {', '.join(DECISIONS)} but is {decision!r}")
        if not reviewer or len(reviewer) > 100:
            raise InvalidDecision(f"reviewer must be a name of 1-100 characters but is {reviewer!r}")
        if decision == "reject" and reason not in REASON_CODES:
            raise InvalidDecision(f"a rejection needs a reason, one of {', '.join(REASON_CODES)}, but got {reason!r}")
        if reason is not None and reason not in REASON_CODES:
            raise InvalidDecision(f"reason must be one of {', '.join(REASON_CODES)} but is {reason!r}")
        if note is not None and len(note) > MAX_NOTE_CHARS:
            raise InvalidDecision(f"note is {len(note)} characters; at most {MAX_NOTE_CHARS}")
        current = self._decidable(item_id, expected_version)
        if decision == "approve" and current.verdict == "fail":
            raise Conflict(f"item {item_id} failed QA ({', '.join(current.reasons)}); reroll or reject it", current)
        decided_at = _now()
        approval_id = None
        if decision == "approve":
            approval_id = "rev-" + sha256_text(json.dumps(
                [item_id, sorted(current.job_keys.values()), reviewer, decided_at.isoformat()]))[:16]
        with self.engine.begin() as conn:
            updated = conn.execute(items_table.update().where(
                items_table.c.id == item_id, items_table.c.version == expected_version).values(
                state=_AFTER[decision], version=expected_version + 1, updated_at=decided_at,
                approval_id=approval_id, approved_by=reviewer if approval_id else None))
            if updated.rowcount != 1:
                raise Conflict(f"item {item_id} changed while deciding (version {expected_version} is gone: "
                               f"{self._last_change(item_id)}); reload and decide again")
            self._log(conn, item_id, expected_version + 1, reviewer, decision, reason, note, approval_id,
                      current.jobs)
        return self.item(item_id)

    def reject_placement(self, item_id: str, reviewer: str, placement: str, reason: str, note: str | None = None,
                         *, expected_version: int) -> Item:
        """Keep one placement of the creative from shipping (``reason``: one of PLACEMENT_REASONS;
        ``other`` needs a note) while the rest ship once the creative is approved. Export skips it
        and withdraws its files already exported. The item's state stays as it is."""
        if reason not in PLACEMENT_REASONS:
            raise InvalidDecision(f"a placement rejection needs a reason, one of {', '.join(PLACEMENT_REASONS)}, "
                                  f"but got {reason!r}")
        note = (note or "").strip() or None
        if reason == "other" and not note:
            raise InvalidDecision("reason 'other' needs a note saying what is wrong")
        if note is not None and len(note) > MAX_NOTE_CHARS:
            raise InvalidDecision(f"note is {len(note)} characters; at most {MAX_NOTE_CHARS}")
        _check_placement(placement)

        def change(current: Item, at: dt.datetime) -> dict[str, Any]:
            rejected = {**current.rejected_placements,
                        placement: {"reason": reason, "note": note or "", "by": reviewer, "at": at.isoformat()}}
            return {"rejected_placements": json.dumps(rejected, sort_keys=True)}
        return self._change(item_id, reviewer, "reject_placement", change, expected_version=expected_version,
                            reason=reason, note=note, placement=placement)

    def restore_placement(self, item_id: str, reviewer: str, placement: str, *, expected_version: int) -> Item:
        """Undo a placement's rejection: it ships with the creative again."""
        _check_placement(placement)

        def change(current: Item, _at: dt.datetime) -> dict[str, Any]:
            if placement not in current.rejected_placements:
                raise InvalidDecision(f"placement {placement} of {current.asset_id} v{current.variant} is not rejected")
            rejected = {k: v for k, v in current.rejected_placements.items() if k != placement}
            return {"rejected_placements": json.dumps(rejected, sort_keys=True)}
        return self._change(item_id, reviewer, "restore_placement", change, expected_version=expected_version,
                            placement=placement)

    def edit_copy(self, item_id: str, reviewer: str, field: str, before: str, after: str, *,
                  expected_version: int) -> Item:
        """Override the item's ``field`` (headline, cta or alt_text): ``before`` is the text it ships
        with now (the sheet's, or an earlier edit's), ``after`` the new one. The sheet is never
        rewritten; export draws the override. The content checks (banned terms, glyphs, length) are
        the caller's: ``exports.overrides.copy_problems``. An edit back to the sheet's text ends
        the override."""
        if field not in COPY_FIELDS:
            raise InvalidDecision(f"field must be one of {', '.join(COPY_FIELDS)} but is {field!r}")
        after = " ".join(after.split()) if field != "alt_text" else after.strip()
        if len(after) > MAX_CELL_CHARS:
            raise InvalidDecision(f"{field} is {len(after)} characters; at most {MAX_CELL_CHARS}")
        if after == before:
            raise InvalidDecision(f"{field} is {after!r} already")

        def change(current: Item, at: dt.datetime) -> dict[str, Any]:
            sheet = current.overrides.get(field, {}).get("before", before)  # the sheet's text, for the first edit
            overrides = dict(current.overrides)
            if after == sheet:
                overrides.pop(field, None)
            else:
                overrides[field] = {"before": sheet, "after": after, "by": reviewer, "at": at.isoformat()}
            return {"copy_overrides": json.dumps(overrides, sort_keys=True)}
        return self._change(item_id, reviewer, "edit_copy", change, expected_version=expected_version,
                            copy_change={"field": field, "before": before, "after": after})

    def _decidable(self, item_id: str, expected_version: int) -> Item:
        """The item, if a person may decide on it now: still at ``expected_version`` (else a
        ``Conflict`` naming who changed it) and not waiting for a reroll's renders."""
        current = self.item(item_id)
        if current.version != expected_version:
            raise Conflict(f"item {item_id} is at version {current.version}, not {expected_version}: "
                           f"it changed meanwhile ({self._last_change(item_id, current)}); reload and decide again",
                           current)
        if current.state == "reroll_requested":
            raise Conflict(f"item {item_id} waits for its reroll's renders; decide on them when they arrive", current)
        return current

    def _change(self, item_id: str, reviewer: str, decision: str, change: Any, *, expected_version: int,
                reason: str | None = None, note: str | None = None, placement: str | None = None,
                copy_change: Mapping[str, str] | None = None) -> Item:
        """Apply ``change(current item, now) -> column values`` to the item at ``expected_version``
        (its state unchanged), audited and logged like a decision."""
        check_item_id(item_id)
        if not reviewer or len(reviewer) > 100:
            raise InvalidDecision(f"reviewer must be a name of 1-100 characters but is {reviewer!r}")
        current = self._decidable(item_id, expected_version)
        at = _now()
        values = change(current, at)
        with self.engine.begin() as conn:
            updated = conn.execute(items_table.update().where(
                items_table.c.id == item_id, items_table.c.version == expected_version).values(
                **values, version=expected_version + 1, updated_at=at))
            if updated.rowcount != 1:
                raise Conflict(f"item {item_id} changed while deciding (version {expected_version} is gone: "
                               f"{self._last_change(item_id)}); reload and decide again")
            self._log(conn, item_id, expected_version + 1, reviewer, decision, reason, note, current.approval_id,
                      current.jobs, placement, copy_change)
        return self.item(item_id)

    def reroll(self, item_id: str, reviewer: str, *, expected_version: int, reason: str | None = None,
               note: str | None = None) -> list[RenderJob]:
        """Record a reroll request and return the new jobs (reroll + 1, new derived seeds).
        Rendering and QA of them is the caller's job; their results come back by :meth:`enqueue`."""
        item = self.decide(item_id, reviewer, "reroll", reason, note, expected_version=expected_version)
        return self.pending_rerolls(item.campaign, item_ids=[item.id])

    def hold_for_review(self, item_id: str, reasons: str) -> bool:
        """Send an item that ``qa-auto`` approved back to the designers because its exports would
        be illegible (``reasons``: text or logo below the legible minimum, a CTA that does not
        fit); logged as ``requeue`` with reason ``overlay`` and the reasons as note. An approval
        by a designer stands (the held files wait for new copy). True if the item was re-queued."""
        current = self.item(item_id)
        if current.state != "approved" or current.approved_by != AUTO_REVIEWER:
            return False
        with self.engine.begin() as conn:
            updated = conn.execute(items_table.update().where(
                items_table.c.id == item_id, items_table.c.version == current.version).values(
                state="queued", version=current.version + 1, approval_id=None, approved_by=None, updated_at=_now()))
            if updated.rowcount != 1:
                return False  # decided meanwhile: that decision stands
            self._log(conn, item_id, current.version + 1, SYSTEM_REVIEWER, "requeue", "overlay",
                      reasons[:MAX_NOTE_CHARS], None, current.jobs)
        return True

    # -- reading -------------------------------------------------------------------------

    def item(self, item_id: str) -> Item:
        check_item_id(item_id)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(items_table).where(items_table.c.id == item_id)).mappings().first()
        if row is None:
            raise ItemNotFound(f"no review item {item_id}")
        return _item(row)

    def items(self, campaign: str, *, state: str | None = None, verdict: str | None = None,
              search: str | None = None, limit: int | None = None, offset: int = 0) -> list[Item]:
        """A campaign's items in sheet order; ``search``: part of the asset id (any case);
        ``limit``/``offset``: one page of them."""
        query = self._where(sa.select(items_table), campaign, state, verdict, search)
        query = query.order_by(items_table.c.row, items_table.c.asset_id, items_table.c.variant)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query).mappings()]

    def count_items(self, campaign: str, *, state: str | None = None, verdict: str | None = None,
                    search: str | None = None) -> int:
        """How many items :meth:`items` would list without ``limit``."""
        query = self._where(sa.select(sa.func.count()).select_from(items_table), campaign, state, verdict, search)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    @staticmethod
    def _where(query: sa.Select, campaign: str, state: str | None, verdict: str | None,
               search: str | None) -> sa.Select:
        query = query.where(items_table.c.campaign == campaign)
        if state:
            query = query.where(items_table.c.state == state)
        if verdict:
            query = query.where(items_table.c.verdict == verdict)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(sa.func.lower(items_table.c.asset_id).like(f"%{escaped.lower()}%", escape="\\"))
        return query

    def campaigns(self) -> dict[str, dict[str, int]]:
        """campaign -> {state: count} (every state present, zeros included)."""
        query = sa.select(items_table.c.campaign, items_table.c.state, sa.func.count()).group_by(
            items_table.c.campaign, items_table.c.state).order_by(items_table.c.campaign)
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for campaign, state, count in conn.execute(query):
                out.setdefault(campaign, dict.fromkeys(STATES, 0))[state] = count
        return out

    def _last_change(self, item_id: str, current: Item | None = None) -> str:
        """Who moved the item last, for a conflict message: 'lee approved it at 14:02:11 UTC, now approved'."""
        current = current or self.item(item_id)
        last = self.decisions(item_id)[-1:] if current.version > 1 else []
        if not last:
            return f"now {current.state}"
        done = {"approve": "approved", "reject": "rejected", "reroll": "asked for a reroll of",
                "requeue": "re-queued", "reject_placement": f"rejected placement {last[0].placement} of",
                "restore_placement": f"restored placement {last[0].placement} of", "edit_copy": "edited the copy of"}.get(last[0].decision, last[0].decision)
        return (f"{last[0].reviewer} {done} it at {last[0].decided_at.strftime('%H:%M:%S UTC')}, "
                f"now {current.state.replace('_', ' ')}")

    def decisions(self, item_id: str) -> list[DecisionRecord]:
        check_item_id(item_id)
        query = sa.select(decisions_table).where(decisions_table.c.item_id == item_id).order_by(decisions_table.c.id)
        with self.engine.connect() as conn:
            return [DecisionRecord(**{**r, "decided_at": _utc(r["decided_at"]), "job_keys": json.loads(r["job_keys"]),
                                      "copy_change": json.loads(r["copy_change"]) if r["copy_change"] else None})
                    for r in conn.execute(query).mappings()]

    def approved(self, campaign: str) -> list[ApprovedVariant]:
        """Every approved variant of a campaign, with the jobs and approval that exports record."""
        return [ApprovedVariant.of(i) for i in self.items(campaign, state="approved")]

    def pending_rerolls(self, campaign: str, *, item_ids: Sequence[str] | None = None) -> list[RenderJob]:
        """The jobs still to render for the items waiting for a reroll."""
        items = [i for i in self.items(campaign, state="reroll_requested") if item_ids is None or i.id in item_ids]
        return [job for item in items for job in rerolled_jobs([job for _aspect, job in sorted(item.jobs.items())])]

    def secret(self) -> str:
        """A random secret kept in the database (signs the web app's session cookies), made once."""
        query = sa.select(settings_table.c.value).where(settings_table.c.name == "secret")
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        if value is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(settings_table.insert().values(name="secret", value=secrets.token_hex(32)))
            except IntegrityError:
                pass  # another process made it first
            with self.engine.connect() as conn:
                value = conn.execute(query).scalar_one()
        return value


    # -- review app sessions ---------------------------------------------------------------

    def open_session(self, reviewer: str, hours: float) -> str:
        """A new session id for ``reviewer`` (the cookie keeps it; the database keeps its hash)."""
        session = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(sessions_table.delete().where(sessions_table.c.expires_at < _now()))
            conn.execute(sessions_table.insert().values(id=sha256_text(session), reviewer=reviewer,
                                                        expires_at=_now() + dt.timedelta(hours=hours)))
        return session

    def session_reviewer(self, session: str) -> str | None:
        """The reviewer of a live session; None once it ended (logout) or expired."""
        query = sa.select(sessions_table.c.reviewer, sessions_table.c.expires_at).where(
            sessions_table.c.id == sha256_text(session))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return row.reviewer if row is not None and _utc(row.expires_at) > _now() else None

    def end_session(self, session: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sessions_table.delete().where(sessions_table.c.id == sha256_text(session)))


def _check_placement(placement: object) -> str:
    if not isinstance(placement, str) or not PLACEMENT_ID.match(placement):
        raise InvalidDecision(f"placement must be a placement id (lowercase letters, digits, . _ -) but is {placement!r}")
    return placement


def _jobs(text: str) -> dict[str, RenderJob]:
    return {a: RenderJob.from_dict(d) for a, d in json.loads(text).items()}


def _item(row: Mapping[str, Any]) -> Item:
    return Item(
        id=row["id"], campaign=row["campaign"], asset_id=row["asset_id"], variant=row["variant"], row=row["row"],
        style=row["style"], style_version=row["style_version"], prompt=row["prompt"], reroll=row["reroll"],
        jobs=_jobs(row["jobs"]), verdict=row["verdict"],
        qa={a: QAResult.from_dict(d) for a, d in json.loads(row["qa"]).items()},
        state=row["state"], approval_id=row["approval_id"], approved_by=row["approved_by"],
        version=row["version"], updated_at=_utc(row["updated_at"]),
        rejected_placements=json.loads(row["rejected_placements"] or "{}"),
        overrides=json.loads(row["copy_overrides"] or "{}"),
    )


def _create_with_umask(path: Path) -> None:
    """Make a missing SQLite file as any tool would (0666 less the umask; SQLite itself uses 0644)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except (FileExistsError, IsADirectoryError):
        pass
    except OSError:
        pass  # no folder, no permission: SQLite's own open says so (ReviewStoreDamaged)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
