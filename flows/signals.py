"""SIGTERM and SIGINT for ``brandbatch run``: stop, end every child process, mark the run.

Python's default for SIGTERM ends the process at once: Prefect's temporary API server and the
export pool's workers (child processes) would be left running, and nothing would say that the
run was cut short. Under :func:`interruptible` both signals raise :class:`Interrupted` in the
main thread instead, so ``finally`` blocks run (the campaign lock is released, writes in
flight finish or leave only temp files); then :func:`end_children` ends every process this one
started (terminate, then kill after a grace period) and :func:`mark_interrupted` records the
run in ``<campaign>/interrupted/``. A write that was cut leaves at most a temp file named with
its process id, which ``LocalStore.clean_temp_files`` removes in the next run.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from store.base import Store
from store.documents import InterruptedRun, write_document
from store.keys import interrupted_key

GRACE_SECONDS = 10.0


class Interrupted(KeyboardInterrupt):
    """The run got SIGTERM or SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Interrupted` (once; a second signal is ignored while
    the run cleans up) for the ``with`` block."""
    def handler(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def end_children(grace: float = GRACE_SECONDS) -> list[int]:
    """Terminate every descendant process (Prefect's server, pool workers), kill those still
    there after ``grace`` seconds; returns their process ids."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return [child.pid for child in children]


def mark_interrupted(store: Store, campaign: str, signal_name: str, started: dt.datetime,
                     children: list[int]) -> str:
    """Record that the run was cut short; returns where."""
    now = dt.datetime.now(dt.UTC)
    key = interrupted_key(campaign, now.strftime("%Y%m%dT%H%M%S%fZ"), os.getpid())
    write_document(store, key, InterruptedRun(
        campaign=campaign, signal=signal_name, started=started.isoformat(timespec="seconds"),
        interrupted=now.isoformat(timespec="seconds"), host=socket.gethostname(), pid=os.getpid(),
        children_ended=children))
    return store.location(key)
