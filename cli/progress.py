"""Uploading a file with a progress bar: what `upload` and the local stack's `demo` show.

A file above the API's multipart threshold goes up in parts, and an interrupted upload of the
same file (same path, size and modification time) resumes: a state file under the data dir
keeps its track id and upload id until the upload completes.
"""

from __future__ import annotations

import hashlib
import json
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

from trackflow.cli.client import ApiClient, ApiError
from trackflow.cli.console import err
from trackflow.settings import get_settings

__all__ = ["resume_state_path", "upload_with_progress"]


def resume_state_path(path: Path, state_dir: Path | None = None) -> Path:
    """Where an upload of ``path`` as it is now (path, size, mtime) keeps its ids: a changed
    file is a new upload, never the resumption of an old one."""
    stat = path.stat()
    identity = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    name = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return (state_dir or get_settings().data_dir / "uploads") / f"{name}.json"


# Answers that say the saved upload will take no more parts: finished, aborted, expired, or
# not the caller's. Anything else (an expired token, a limit, the API down) keeps the state for
# the next try.
_UPLOAD_OVER = frozenset({"upload_finished", "upload_gone", "not_multipart", "not_found"})


def _resumable(client: ApiClient, state: Path) -> dict[str, Any] | None:
    """The upload a state file names, if the API still takes its parts (``done`` set if S3
    completed it already: an earlier run lost the answer); None, the file gone, if it is over."""
    try:
        saved = dict(json.loads(state.read_text()))
        track_id = saved["track_id"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        state.unlink(missing_ok=True)
        return None
    try:
        client.parts(track_id)
        return saved
    except ApiError as error:
        if error.code not in _UPLOAD_OVER:
            raise
        if error.code == "upload_gone":
            try:  # completed, with the answer lost? Asking again says so
                client.complete_upload(track_id, [])
                return saved | {"done": True}
            except ApiError:
                pass
        state.unlink(missing_ok=True)
        return None


def upload_with_progress(
    client: ApiClient, path: Path, *, state_dir: Path | None = None
) -> dict[str, Any]:
    """Create the upload (or resume this file's unfinished one) and send PATH: to its presigned
    POST, or in parts; the API's answer (track id...)."""
    state = resume_state_path(path, state_dir)
    created = _resumable(client, state)
    if created is not None and created.get("done"):
        state.unlink(missing_ok=True)
        return created
    if created is None:
        created = client.create_upload(path)
        if "multipart" in created:
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(
                json.dumps(
                    {
                        "track_id": created["track_id"],
                        "upload_id": created["multipart"]["upload_id"],
                    }
                )
            )
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
        if "upload" in created:
            client.send_file(created["upload"], path, lambda n: progress.advance(bar, n))
            return created
        client.send_parts(created["track_id"], path, lambda n: progress.advance(bar, n))
    state.unlink(missing_ok=True)
    return created
