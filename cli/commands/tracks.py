"""Uploading and following tracks: `upload`, `status`, `reprocess`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.live import Live

from trackflow.cli.client import ApiClient
from trackflow.cli.console import EXIT_NOT_PUBLISHED, EXIT_TIMEOUT, done, err, out
from trackflow.cli.display import outputs_table, steps_table
from trackflow.cli.identity import with_client
from trackflow.cli.progress import upload_with_progress
from trackflow.domain.track import TERMINAL, Status

__all__ = ["reprocess", "status", "upload"]

as_json_option = click.option(
    "--json", "as_json", is_flag=True, help="print the track record as JSON"
)


def _follow(client: ApiClient, track_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll the track to a terminal state: a live table on a terminal, a line a change else."""
    if err.is_terminal:
        with Live(console=err, refresh_per_second=4, transient=False) as live:
            return client.wait(
                track_id, timeout_s=timeout_s, on_update=lambda t: live.update(steps_table(t))
            )
    seen: dict[str, str] = {}

    def log_changes(track: dict[str, Any]) -> None:
        for name, state in track["steps"].items():
            if seen.get(name) != state.get("status"):
                seen[name] = state.get("status", "")
                err.print(f"{track['track_id'][:8]} {name}: {seen[name]}")

    return client.wait(track_id, timeout_s=timeout_s, on_update=log_changes)


def _finish(track: dict[str, Any], as_json: bool) -> NoReturn:
    """Print the record and exit: 0 published, 1 rejected or failed, 3 still moving."""
    if as_json:
        out.print_json(json.dumps(track))
    else:
        out.print(steps_table(track))
        if track.get("outputs"):
            out.print(outputs_table(track))
    if track["status"] == Status.PUBLISHED:
        sys.exit(0)
    sys.exit(EXIT_NOT_PUBLISHED if track["status"] in TERMINAL else EXIT_TIMEOUT)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_client()
@click.option("--wait", is_flag=True, help="follow processing to a terminal state")
@as_json_option
@click.option("--timeout", default=1800.0, show_default=True, help="seconds to wait")
def upload(client: ApiClient, file: Path, wait: bool, as_json: bool, timeout: float) -> None:
    """Upload FILE (a large one in parts; run again to resume an interrupted one); with
    --wait, follow it until it is published, rejected or failed."""
    track_id = upload_with_progress(client, file)["track_id"]
    done(f"uploaded as track {track_id}")
    track = _follow(client, track_id, timeout) if wait else client.track(track_id)
    if wait:
        _finish(track, as_json)
    out.print_json(json.dumps(track)) if as_json else out.print(track_id)


@click.command()
@click.argument("track_id")
@with_client()
@click.option("--watch", is_flag=True, help="follow it until it reaches a terminal state")
@as_json_option
@click.option("--timeout", default=1800.0, show_default=True, help="seconds to watch")
def status(client: ApiClient, track_id: str, watch: bool, as_json: bool, timeout: float) -> None:
    """Show a track's record (exit 0 only when published)."""
    _finish(_follow(client, track_id, timeout) if watch else client.track(track_id), as_json)


@click.command()
@click.argument("track_id")
@with_client()
def reprocess(client: ApiClient, track_id: str) -> None:
    """Run TRACK_ID's workflow again (outputs replaced in place, nothing sent twice)."""
    track = client.request("POST", f"/v1/tracks/{track_id}/reprocess")
    done(f"{track_id} is {track['status']} again")
