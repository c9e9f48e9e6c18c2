"""The review queue's decision log: the copy of every human (and pipeline) decision that outlives
the queue's database.

Every change of a review item (queued, re-queued, approved, rejected, reroll asked) is written
before the database transaction commits, as one write-once object in the artefact store beside
the queue: ``review-log/<campaign>/<item id>/<version>.json``, holding the item as it is after the
change and the decision that made it, with a sha256 of both. Objects are created with
``put(overwrite=False)``, so the log is append-only and one version of an item has exactly one
record. From it :func:`review.rebuild.rebuild_queue` rebuilds a lost or damaged queue
(``brandbatch review --rebuild``), and :meth:`DecisionLog.versions` lets the queue see cheaply (a
listing, no reads) that it and the log disagree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store.base import Store
from store.keys import review_log_key, review_log_prefix

RECOVERY = "brandbatch review --rebuild"


@dataclass(frozen=True)
class LogRecord:
    """One version of one item: its row after the change, and the decision (None for a plain
    first queuing)."""

    item: Mapping[str, Any]
    decision: Mapping[str, Any] | None

    @property
    def version(self) -> int:
        return int(self.item["version"])


class DamagedRecord(ValueError):
    """A log record that is torn, altered or not a record (the message names it)."""


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class DecisionLog:
    """The log of one queue, in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def key(self, campaign: str, item_id: str, version: int) -> str:
        return review_log_key(campaign, item_id, version)

    def location(self, campaign: str | None = None) -> str:
        return self.store.location(review_log_prefix(campaign))

    def append(self, record: LogRecord) -> bool:
        """Write ``record``; False (nothing written) if its version of the item is logged already."""
        body = {"item": dict(record.item), "decision": dict(record.decision) if record.decision else None}
        data = json.dumps({**body, "sha256": _digest(body)}, sort_keys=True, ensure_ascii=False, indent=1)
        key = self.key(record.item["campaign"], record.item["id"], record.version)
        return self.store.put(key, (data + "\n").encode("utf-8"), content_type="application/json", overwrite=False)

    def versions(self, campaign: str | None = None) -> dict[str, tuple[str, int]]:
        """item id -> (campaign, newest logged version), from the listing alone."""
        out: dict[str, tuple[str, int]] = {}
        for key in self.store.list(review_log_prefix(campaign)):
            parts = key.split("/")
            if len(parts) != 4 or not parts[3].endswith(".json") or not parts[3][:-5].isdigit():
                continue
            _, camp, item_id, name = parts
            version = int(name[:-5])
            if version > out.get(item_id, ("", 0))[1]:
                out[item_id] = (camp, version)
        return out

    def keys(self) -> list[str]:
        return [k for k in self.store.list(review_log_prefix()) if k.endswith(".json")]

    def read(self, key: str) -> LogRecord:
        """The record under ``key``; :class:`DamagedRecord` when it is torn or altered."""
        where = self.store.location(key)
        try:
            data = json.loads(self.store.get(key))
            body = {"item": data["item"], "decision": data["decision"]}
            if data["sha256"] != _digest(body):
                raise DamagedRecord(f"{where}: sha256 does not match its content (altered or torn)")
            record = LogRecord(item=body["item"], decision=body["decision"])
            expected = self.key(record.item["campaign"], record.item["id"], record.version)
        except DamagedRecord:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedRecord(f"{where}: not a decision log record ({type(exc).__name__}: {exc})") from None
        if expected != key:
            raise DamagedRecord(f"{where}: holds the record of {expected}")
        return record
