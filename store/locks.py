"""One run of a campaign at a time: a lock per campaign beside its artefacts.

* Local folder: an exclusive ``fcntl.flock`` on ``<out>/<campaign>/.run.lock``. The kernel drops
  it when the process ends, however it ends (kill -9 included), so a stale lock cannot exist.
* S3: a lease object ``<campaign>/run.lease`` created with ``put_object(IfNoneMatch='*')``. Its
  holder rewrites it every ``ttl / 3`` seconds with ``IfMatch=<its ETag>`` and deletes it at the
  end. A lease not renewed for ``ttl`` seconds (its holder died) is taken over by replacing that
  very version (``IfMatch``), so of two runs waiting for it only one gets it; a holder whose
  renewal fails (taken over, store unreachable) stops the run before it writes on.

A second run waits up to ``wait`` seconds, then refuses with :class:`CampaignBusy`, one line
naming the campaign, the holder and the lock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from store.base import Store, StoreError, check_key
from store.keys import run_lease_key, run_lock_key

DEFAULT_TTL = 120.0
POLL_SECONDS = 0.5


class CampaignBusy(StoreError):
    """Another run holds the campaign's lock."""


def _holder(owner: str) -> dict:
    return {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _busy(campaign: str, where: str, holder: dict | None, wait: float) -> CampaignBusy:
    who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
           if isinstance(holder, dict) else "another process")
    waited = f" (waited {wait:g} s)" if wait else ""
    return CampaignBusy(f"campaign {campaign} is being run by {who}; lock {where}{waited}: nothing was done; "
                        "wait for that run to finish, or pass --wait SECONDS to wait for it")


_HELD: set[tuple[str, str, int]] = set()  # (store root, campaign, thread) locks held in this process
_HELD_LOCK = threading.Lock()


def lock_taken(store: Store, campaign: str) -> bool:
    """Whether a run or export of ``campaign`` has taken its lock in ``store`` (its lock file or
    lease exists: a first run may be under way before the campaign has any other file)."""
    from store.s3 import S3Store

    if isinstance(store, S3Store):
        return store.exists(run_lease_key(check_key(campaign)))
    return (Path(store.root) / run_lock_key(check_key(campaign))).exists()


@contextmanager
def campaign_lock(store: Store, campaign: str, *, wait: float = 0.0, ttl: float = DEFAULT_TTL) -> Iterator[None]:
    """Hold ``campaign``'s lock in ``store`` for the ``with`` block (see the module doc).
    Re-entrant within a thread: the command line takes it before the flow, which takes it again."""
    check_key(campaign)
    from store.s3 import S3Store

    held = (store.root, campaign, threading.get_ident())
    with _HELD_LOCK:
        again = held in _HELD
    if again:
        yield
        return
    lock = _lease(store, campaign, wait, ttl) if isinstance(store, S3Store) else \
        _file_lock(Path(store.root) / run_lock_key(campaign), campaign, wait)
    with lock:
        with _HELD_LOCK:
            _HELD.add(held)
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD.discard(held)


@contextmanager
def _file_lock(path: Path, campaign: str, wait: float) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    try:
                        holder = json.loads(path.read_text(encoding="utf-8") or "null")
                    except (OSError, ValueError):
                        holder = None
                    raise _busy(campaign, str(path), holder, wait) from None
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder(uuid.uuid4().hex)).encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _lease(store, campaign: str, wait: float, ttl: float) -> Iterator[None]:
    from botocore.exceptions import ClientError

    key = store._key(run_lease_key(campaign))
    where = store.location(run_lease_key(campaign))
    client = store.client
    holder = _holder(uuid.uuid4().hex)

    def body() -> bytes:
        return json.dumps({**holder, "renewed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}).encode()

    def status(exc: ClientError) -> int:
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)

    deadline = time.monotonic() + wait
    etag = None
    while etag is None:
        try:
            etag = client.put_object(Bucket=store.bucket, Key=key, Body=body(), IfNoneMatch="*")["ETag"]
            break
        except ClientError as exc:
            if status(exc) not in (409, 412):
                raise store._failed("lease put of", where, exc) from exc
        try:
            current = client.get_object(Bucket=store.bucket, Key=key)
        except ClientError as exc:
            if status(exc) == 404:
                continue  # released meanwhile: try again at once
            raise store._failed("lease get of", where, exc) from exc
        age = (dt.datetime.now(dt.UTC) - current["LastModified"]).total_seconds()
        try:
            info = json.loads(current["Body"].read())
        except ValueError:
            info = None
        if age > ttl:  # its holder stopped renewing: take over exactly that version
            try:
                etag = client.put_object(Bucket=store.bucket, Key=key, Body=body(), IfMatch=current["ETag"])["ETag"]
                break
            except ClientError as exc:
                if status(exc) not in (409, 412):
                    raise store._failed("lease take-over of", where, exc) from exc
                continue  # someone else took it first
        if time.monotonic() >= deadline:
            raise _busy(campaign, where, info, wait)
        time.sleep(POLL_SECONDS)

    lost: list[str] = []
    stop = threading.Event()

    def renew() -> None:
        nonlocal etag
        while not stop.wait(ttl / 3):
            try:
                etag = client.put_object(Bucket=store.bucket, Key=key, Body=body(), IfMatch=etag)["ETag"]
            except Exception as exc:  # noqa: BLE001 - any failure: the lease may be gone
                lost.append(f"lease {where} could not be renewed ({exc}): another run may hold it now")
                return

    thread = threading.Thread(target=renew, name=f"lease-{campaign}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if not lost:
            try:
                client.delete_object(Bucket=store.bucket, Key=key, IfMatch=etag)
            except ClientError:
                pass  # taken over after all: the new holder's lease stays
    if lost:
        raise StoreError(lost[0])
