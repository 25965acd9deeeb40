"""Progress bars for long work (rich); silent when disabled so library calls and tests stay quiet."""

from __future__ import annotations

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


def progress_bar(enabled: bool = True) -> Progress:
    """A rich Progress (use as a context manager: add_task / advance / update / remove_task)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)
