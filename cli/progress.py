"""Uploading a file with a progress bar: what `upload` and the local stack's `demo` show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from trackflow.cli.client import ApiClient
from trackflow.cli.console import err

__all__ = ["upload_with_progress"]


def upload_with_progress(client: ApiClient, path: Path) -> dict[str, Any]:
    """Create the upload and send PATH to its presigned POST; the API's answer (track id...)."""
    created = client.create_upload(path)
    size = path.stat().st_size
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        # on a pipe or a log file, leave no frames behind
        transient=not err.is_terminal,
    ) as progress:
        bar = progress.add_task(f"uploading {path.name}", total=size)
        client.send_file(created["upload"], path, lambda n: progress.advance(bar, n))
    return created
