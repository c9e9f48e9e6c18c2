"""Progress of long work on stderr: a rich progress bar on a terminal, else a line every
``LINE_SECONDS`` (and at the end) so logs of non-interactive runs show it too; a no-op
callback when disabled. ``advance(key, ok)`` counts one finished piece of work; those finished
without a result (``ok=False``: failed, or left by a budget) are counted apart, so "5 of 5"
never hides that 4 of them were not done."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LINE_SECONDS = 10.0
Advance = Callable[..., None]  # advance(key: str, ok: bool = True)


@contextmanager
def progress_bar(label: str, total: int, *, enabled: bool, stream=None,
                 clock: Callable[[], float] = time.monotonic) -> Iterator[Advance]:
    stream = stream or sys.stderr
    if not enabled or total == 0:
        yield lambda _key, ok=True: None
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
        not_done = 0

        def advance(_key: str, ok: bool = True) -> None:
            nonlocal not_done
            if not ok:
                not_done += 1
                bar.update(task_id, description=f"{label} ({not_done} not done)")
            bar.advance(task_id)

        yield advance


@contextmanager
def progress_lines(label: str, total: int, stream, clock: Callable[[], float]) -> Iterator[Advance]:
    """``rendering: 12 of 80 (15%), 41 s`` (``, 3 not done`` once some finished without a result)
    every LINE_SECONDS while work finishes, and once at the end."""
    start = clock()
    state = {"done": 0, "shown": start, "printed": 0, "not_done": 0}

    def line() -> None:
        done = state["printed"] = state["done"]
        not_done = f", {state['not_done']} not done" if state["not_done"] else ""
        print(f"{label}: {done} of {total} ({100 * done // total}%), {clock() - start:.0f} s{not_done}", file=stream,
              flush=True)

    def advance(_key: str, ok: bool = True) -> None:
        state["done"] = min(state["done"] + 1, total)
        state["not_done"] += not ok
        if clock() - state["shown"] >= LINE_SECONDS:
            state["shown"] = clock()
            line()

    yield advance
    if state["done"] != state["printed"]:  # the end, unless the last line already said it
        line()
