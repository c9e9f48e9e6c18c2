"""Progress of long work on stderr: a rich progress bar on a terminal, else a line every
``LINE_SECONDS`` (and at the end) so logs of non-interactive runs show it too; a no-op
callback when disabled."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LINE_SECONDS = 10.0


@contextmanager
def progress_bar(label: str, total: int, *, enabled: bool, stream=None,
                 clock: Callable[[], float] = time.monotonic) -> Iterator[Callable[[str], None]]:
    stream = stream or sys.stderr
    if not enabled or total == 0:
        yield lambda _key: None
        return
    if not stream.isatty():
        with progress_lines(label, total, stream, clock) as advance:
            yield advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(file=stream), transient=False) as bar:
        task_id = bar.add_task(label, total=total)
        yield lambda _key: bar.advance(task_id)


@contextmanager
def progress_lines(label: str, total: int, stream, clock: Callable[[], float]) -> Iterator[Callable[[str], None]]:
    """``rendering: 12 of 80 (15%), 41 s`` every LINE_SECONDS while work finishes, and once at the end."""
    start = clock()
    state = {"done": 0, "shown": start, "printed": 0}

    def line() -> None:
        done = state["printed"] = state["done"]
        print(f"{label}: {done} of {total} ({100 * done // total}%), {clock() - start:.0f} s", file=stream, flush=True)

    def advance(_key: str) -> None:
        state["done"] = min(state["done"] + 1, total)
        if clock() - state["shown"] >= LINE_SECONDS:
            state["shown"] = clock()
            line()

    yield advance
    if state["done"] != state["printed"]:  # the end, unless the last line already said it
        line()
