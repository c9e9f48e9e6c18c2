"""``brandbatch review --rebuild``: bring a review queue and its decision log back in step.

A queue database that cannot be read (torn, not a database) is moved aside to
``<name>.damaged-<UTC time>`` and started afresh. Then, item by item, the newer side wins:
items the log has newer versions of are rewritten from the log (their row and decision
history); items the queue has newer versions of (a log lost or cut short) are written back
to the log. An item with a log record that is torn or altered cannot be trusted to say what a
person decided, so it comes back ``queued`` (logged as ``requeue``, reason ``log_damaged``):
nothing is approved or exported until a designer decides again.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from review.decision_log import DamagedRecord, DecisionLog, LogRecord
from review.queue import (SYSTEM_REVIEWER, ReviewQueue, ReviewStoreDamaged, _jobs, _record_item, database_url,
                          decisions_table, items_table)
from store import open_store


@dataclass
class RebuildReport:
    queue: str
    moved_aside: str = ""
    from_log: int = 0  # items rewritten from the log
    to_log: int = 0  # items written back to the log
    damaged: list[str] = field(default_factory=list)  # one line per damaged log record

    def lines(self) -> list[str]:
        out = [f"moved the unreadable queue aside to {self.moved_aside}"] if self.moved_aside else []
        out += [f"damaged log record: {line}; its item waits for a designer again" for line in self.damaged]
        out.append(f"review queue {self.queue}: {self.from_log} items rebuilt from the decision log, "
                   f"{self.to_log} items written back to it, {len(self.damaged)} damaged records")
        return out


def _move_aside(path: Path) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            os.replace(part, Path(f"{target}{suffix}"))
    return str(target)


def _parse(row: dict) -> dict:
    return {k: dt.datetime.fromisoformat(v) if k in ("updated_at", "decided_at") and isinstance(v, str) else v
            for k, v in row.items()}


def rebuild_queue(out: str) -> RebuildReport:
    url = database_url(out)
    log = DecisionLog(open_store(out))
    report = RebuildReport(queue=url)
    try:
        queue = ReviewQueue(url, log, out=out)
    except ReviewStoreDamaged:
        if not url.startswith("sqlite:///"):
            raise  # a server database is the operator's to restore or recreate empty
        path = Path(url.removeprefix("sqlite:///"))
        report.moved_aside = _move_aside(path)
        queue = ReviewQueue(url, log, out=out)
    report.queue = queue.location
    try:
        _reconcile(queue, log, report)
        queue.verify()
    finally:
        queue.close()
    return report


def _reconcile(queue: ReviewQueue, log: DecisionLog, report: RebuildReport) -> None:
    records: dict[str, dict[int, LogRecord]] = {}
    damaged: dict[str, tuple[str, int]] = {}  # item id -> (campaign, newest version seen)
    for key in log.keys():
        parts = key.split("/")
        try:
            record = log.read(key)
        except DamagedRecord as exc:
            report.damaged.append(str(exc))
            if len(parts) == 4 and parts[3][:-5].isdigit():
                version = max(int(parts[3][:-5]), damaged.get(parts[2], ("", 0))[1])
                damaged[parts[2]] = (parts[1], version)
            continue
        records.setdefault(record.item["id"], {})[record.version] = record
    with queue.engine.connect() as conn:
        held = {r.id: r.version for r in conn.execute(sa.select(items_table.c.id, items_table.c.version))}
    for item_id, versions in sorted(records.items()):
        newest = max(versions)
        if item_id in damaged or held.get(item_id, 0) < newest:
            _from_log(queue, item_id, versions, damaged.get(item_id))
            report.from_log += 1
    for item_id, (campaign, version) in sorted(damaged.items()):
        if item_id not in records:
            report.damaged.append(f"item {item_id} of {campaign} has no readable record; it is left out")
    logged = log.versions()
    for item_id, version in sorted(held.items()):
        if item_id not in records and item_id not in damaged and version > logged.get(item_id, ("", 0))[1]:
            _to_log(queue, item_id)
            report.to_log += 1


def _from_log(queue: ReviewQueue, item_id: str, versions: dict[int, LogRecord],
              damaged: tuple[str, int] | None) -> None:
    newest = versions[max(versions)]
    with queue.engine.begin() as conn:
        conn.execute(decisions_table.delete().where(decisions_table.c.item_id == item_id))
        conn.execute(items_table.delete().where(items_table.c.id == item_id))
        conn.execute(items_table.insert().values(**_parse(dict(newest.item))))
        for version in sorted(versions):
            if versions[version].decision:
                decision = {k: v for k, v in _parse(dict(versions[version].decision)).items() if k != "id"}
                conn.execute(decisions_table.insert().values(**decision))
        if damaged is not None:  # fail closed: a designer decides again
            version = max(damaged[1], newest.version) + 1
            conn.execute(items_table.update().where(items_table.c.id == item_id).values(
                state="queued", approval_id=None, approved_by=None, version=version,
                updated_at=dt.datetime.now(dt.UTC)))
            queue._log(conn, item_id, version, SYSTEM_REVIEWER, "requeue", "log_damaged", None, None,
                       _jobs(newest.item["jobs"]))


def _to_log(queue: ReviewQueue, item_id: str) -> None:
    with queue.engine.connect() as conn:
        row = conn.execute(sa.select(items_table).where(items_table.c.id == item_id)).mappings().one()
        last = conn.execute(sa.select(decisions_table).where(
            decisions_table.c.item_id == item_id, decisions_table.c.item_version == row["version"]).order_by(
            decisions_table.c.id.desc())).mappings().first()
    decision = {k: v for k, v in last.items() if k != "id"} if last else None
    queue.log.append(LogRecord(item=_record_item(row), decision=_record_item(decision) if decision else None))
