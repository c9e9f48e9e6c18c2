"""A rich progress bar on stderr for interactive runs; a no-op callback otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(label: str, total: int, *, enabled: bool) -> Iterator[Callable[[str], None]]:
    if not enabled or total == 0:
        yield lambda _key: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task_id = bar.add_task(label, total=total)
        yield lambda _key: bar.advance(task_id)
