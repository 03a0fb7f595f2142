"""What the commands print with: one console for results and one for everything else, so that
a command's standard output can be piped; and the exit codes scripts test for."""

from __future__ import annotations

from rich.console import Console, JustifyMethod
from rich.table import Table

__all__ = ["EXIT_NOT_PUBLISHED", "EXIT_TIMEOUT", "done", "err", "out", "table"]

err = Console(stderr=True)
out = Console()

# a track that was rejected or failed, and any request the API refused
EXIT_NOT_PUBLISHED = 1
# a track still moving when --wait or --watch gave up on it
EXIT_TIMEOUT = 3


def done(message: str) -> None:
    """Report a step that worked (on standard error: standard output is for results)."""
    err.print(f"[green]✓[/] {message}")


def table(*columns: str, title: str | None = None, justify: JustifyMethod = "left") -> Table:
    """An empty table with these column headings, in the CLI's borderless style."""
    grid = Table(box=None, header_style="bold", title=title)
    for column in columns:
        grid.add_column(column, justify=justify)
    return grid
