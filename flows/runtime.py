"""How a command runs its flow: recorded by a Prefect server when one is configured, else in this
process with no server at all.

Starting Prefect's temporary (ephemeral) server cost a command ~5 s and its flow-run bookkeeping
more, while nothing it recorded was shown to anyone: the run records, metrics, manifest and report
live in the output folder. So a command with no ``PREFECT_API_URL`` (environment, or the active
profile of ``$PREFECT_HOME/profiles.toml``) calls the flow's function directly (``run_flow``):
its steps (``step``, a Prefect task in a flow run) run as plain calls, run artifacts are skipped
and the run logger is brandbatch's own. With a server configured, the same function runs as its
Prefect flow as before: flow runs, task runs and artifacts are recorded there.

Either way Prefect's and brandbatch's log records go to a log file under the output folder
(``store.keys.log_key``), and to the console only with ``--verbose`` (``command_log``): the
console shows brandbatch's own lines.

Prefect is imported only where a flow run needs it (importing it costs a command ~1.7 s of CPU):
this module imports it inside functions, a flow's body and steps live in a module without it
(``flows.batch``) and its Prefect flow in another (``flows.campaign``).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import logging
import os
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOGGER_NAME = "brandbatch"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def prefect_server() -> str | None:
    """The Prefect API URL this process would use, or None when none is configured (Prefect would
    start a temporary server). Read without importing Prefect: ``PREFECT_API_URL`` in the
    environment, else in the active profile (``PREFECT_PROFILE`` or the file's ``active``) of
    ``$PREFECT_PROFILES_PATH`` / ``$PREFECT_HOME/profiles.toml``."""
    if "PREFECT_API_URL" in os.environ:
        return os.environ["PREFECT_API_URL"].strip() or None
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    url = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url).strip() or None if url else None


def in_flow_run() -> bool:
    """Whether this code runs inside a Prefect flow run (False when the flow's function was
    called directly, and always False when Prefect was never imported)."""
    if "prefect.context" not in sys.modules:
        return False
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def new_run_id() -> str:
    """The id of this flow run: Prefect's in a flow run, else a new random one (a run without a
    server is recorded in the output folder like any other, and its record needs its own name)."""
    if in_flow_run():
        from prefect.runtime import flow_run

        return str(flow_run.get_id())
    import uuid

    return str(uuid.uuid4())


def run_flow(flow: str, fn: Callable, /, **parameters: Any) -> Any:
    """``fn(**parameters)``: under Prefect as the flow ``flow`` (``module:name``, a Prefect flow of
    ``fn``) when a server is configured, else ``fn`` called directly in this process (no server, no
    flow-run bookkeeping, and neither ``flow``'s module nor Prefect is imported)."""
    if not prefect_server():
        return fn(**parameters)
    module, _, name = flow.partition(":")
    recorded = getattr(importlib.import_module(module), name)
    if getattr(recorded, "fn", None) is not fn:
        raise TypeError(f"{flow} is not the Prefect flow of {fn.__module__}.{fn.__qualname__}")
    return recorded(**parameters)


class Step:
    """A flow step: a Prefect task (``prefect.Task(fn, **options)``, never cached by Prefect:
    resume is by content) in a flow run, else a plain call of ``fn``, retried as the task's
    ``retries``, ``retry_delay_seconds`` (seconds, or a list of them) and ``retry_condition_fn``
    say. A Prefect task called outside a flow run would start the temporary server to record
    itself; and the task is made only in a flow run, so a command without a server never
    imports Prefect."""

    def __init__(self, fn: Callable, **options: Any) -> None:
        self.fn, self.options = fn, options
        self.name = options.get("name", fn.__name__)
        self.retries: int = options.get("retries", 0)
        self.retry_delay_seconds: float | list[float] = options.get("retry_delay_seconds", 0)
        self.retry_condition_fn: Callable | None = options.get("retry_condition_fn")
        self._task: Any = None
        functools.update_wrapper(self, fn)

    @property
    def task(self) -> Any:
        """The Prefect task of this step (made, and Prefect imported, at the first use)."""
        if self._task is None:
            from prefect import Task
            from prefect.cache_policies import NO_CACHE

            self._task = Task(fn=self.fn, cache_policy=NO_CACHE, **self.options)
        return self._task

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if in_flow_run():
            return self.task(*args, **kwargs)
        return call_retried(self, args, kwargs)


def step(**options: Any) -> Callable[[Callable], Step]:
    """``@step(**options)``: the function as a ``Step`` (options as ``prefect.task``'s)."""

    def decorate(fn: Callable) -> Step:
        return Step(fn, **options)

    return decorate


def call_retried(task: Any, args: tuple, kwargs: dict, *, sleep: Callable[[float], None] = time.sleep) -> Any:
    """``task.fn(*args, **kwargs)``, called again after a failure the task would retry under Prefect."""
    delays = task.retry_delay_seconds
    for attempt in range(task.retries + 1):
        try:
            return task.fn(*args, **kwargs)
        except Exception as exc:
            retry = attempt < task.retries and (task.retry_condition_fn is None
                                                 or task.retry_condition_fn(task, None, _failed(exc)))
            if not retry:
                raise
            delay = (delays[min(attempt, len(delays) - 1)] if isinstance(delays, list) else delays) or 0
            run_logger().warning("%s failed (%s); retry %d of %d in %.0f s", task.name, exc, attempt + 1,
                                 task.retries, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _failed(exc: Exception) -> Any:
    """The Failed state a Prefect task's ``retry_condition_fn`` is given (Prefect imported only
    after a failure, when a retry is weighed)."""
    from prefect.states import Failed

    return Failed(data=exc)


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger in a flow run (its records reach the server), else brandbatch's."""
    if in_flow_run():
        from prefect import get_run_logger

        return get_run_logger()
    return logging.getLogger(LOGGER_NAME)


def markdown_artifact(markdown: str, *, key: str, description: str) -> None:
    """A Prefect markdown artifact in a flow run; nothing outside one (the same text is in the
    run's report and records under the output folder)."""
    if in_flow_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown, key=key, description=description)


@contextmanager
def command_log(out: str, campaign: str, command: str, *, verbose: bool) -> Iterator[str]:
    """Prefect's and brandbatch's log records of one command go to ``log_key(campaign, command,
    start)`` in the output folder (written when the command ends, also when it fails; none when
    nothing was logged), and to stderr only with ``verbose``; yields the log's location."""
    from store import open_store
    from store.keys import log_key

    store = open_store(out)
    key = log_key(campaign, command, dt.datetime.now(dt.timezone.utc))
    handle, tmp = tempfile.mkstemp(prefix="brandbatch-log-", suffix=".log")
    os.close(handle)
    to_file = logging.FileHandler(tmp, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    ours = logging.getLogger(LOGGER_NAME)
    ours.setLevel(logging.INFO)
    removed = _prefect_console_handlers()  # the console shows brandbatch's lines, and these only with --verbose
    for logger, handler in removed:
        logger.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr) if verbose else None
    if console is not None:
        console.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(console)
    logging.getLogger().addHandler(to_file)
    try:
        yield store.location(key)
    finally:
        logging.getLogger().removeHandler(to_file)
        to_file.close()
        if console is not None:
            logging.getLogger().removeHandler(console)
        for logger, handler in removed:
            logger.addHandler(handler)
        try:
            if text := Path(tmp).read_bytes():  # a command that logged nothing leaves no file (reruns change nothing)
                store.put(key, text, content_type="text/plain; charset=utf-8", overwrite=True)
        except Exception:  # noqa: BLE001 - a log that cannot be stored must not hide the command's own error
            logging.getLogger(LOGGER_NAME).warning("could not store the log at %s", store.location(key))
        finally:
            os.unlink(tmp)


def _prefect_console_handlers() -> list[tuple[logging.Logger, logging.Handler]]:
    """Prefect's console handlers (on the root, uvicorn and fastapi loggers once Prefect is
    imported: commands import their flow before ``command_log``); none when it is not imported."""
    if "prefect.logging.handlers" not in sys.modules:
        return []
    from prefect.logging.handlers import PrefectConsoleHandler

    return [(logger, handler) for logger in map(logging.getLogger, ("", "uvicorn", "fastapi"))
            for handler in logger.handlers if isinstance(handler, PrefectConsoleHandler)]
