"""The one progress library: rich bars on polyret's console (stderr, `polyret.runtime.console`).

rich 13+ nests live displays, so a library bar inside a command's bar is fine. (The Hugging Face
trainer and sentence-transformers draw their own tqdm bars; polyret turns those off or leaves them
to their `show_progress` flags, and draws its own with these helpers.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from polyret.runtime import console

T = TypeVar("T")


def progress_bar(
    *, show: bool = True, title: str | None = None, elapsed: bool = False, transient: bool = False
) -> Progress:
    """A `rich.progress.Progress` with polyret's columns: description (or a fixed bold `title`, the
    task's description then after the counts), bar, done/total, time remaining (or elapsed)."""
    head = [TextColumn(f"[bold]{title}[/]")] if title else [TextColumn("{task.description}")]
    tail = [TextColumn("{task.description}")] if title else []
    timing = TimeElapsedColumn() if elapsed else TimeRemainingColumn()
    return Progress(
        *head, BarColumn(), MofNCompleteColumn(), timing, *tail, console=console, disable=not show, transient=transient
    )


@contextmanager
def counting(
    total: int, description: str, *, show: bool = True, transient: bool = False
) -> Iterator[Callable[[int], None]]:
    """A bar over `total` units; yields `advance(n)`."""
    with progress_bar(show=show, transient=transient) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def track(
    items: Iterable[T], description: str, *, total: int | None = None, show: bool = True, transient: bool = True
) -> Iterator[T]:
    """`items`, one bar step each."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    with counting(total if total is not None else len(items), description, show=show, transient=transient) as advance:
        for item in items:
            yield item
            advance(1)
