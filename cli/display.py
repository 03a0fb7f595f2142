"""How the CLI shows a track: its steps as they run, and the timeline once it is done."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from trackflow.adapters.state.dynamo import parse_iso
from trackflow.domain.keys import STREAM_MASTER
from trackflow.domain.track import STEP_NAMES

__all__ = ["outputs_table", "steps_table", "timeline"]

_STYLE = {
    "pending": "dim",
    "running": "bold yellow",
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "dim",
    "published": "bold green",
    "rejected": "bold red",
    "failed_track": "bold red",
    "processing": "yellow",
    "queued": "cyan",
    "awaiting_upload": "cyan",
    "held_for_review": "magenta",
}


def _when(value: str | None) -> datetime | None:
    return parse_iso(value) if value else None


def _title(track: dict[str, Any]) -> str:
    return track.get("metadata", {}).get("tags", {}).get("title") or track.get("filename", "")


def steps_table(track: dict[str, Any]) -> Group:
    """The live view: status and progress, then one row a step."""
    status = track["status"]
    head = Text.assemble(
        (f"{_title(track)} ", "bold"),
        (f"[{track['track_id'][:8]}] ", "dim"),
        (status, _STYLE.get(status, "")),
        f"  {track.get('progress', 0)}%",
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("step", "status", "tries", "seconds", "note"):
        table.add_column(column)
    for name in STEP_NAMES:
        state = track["steps"].get(name, {})
        error = state.get("error") or {}
        table.add_row(
            name,
            Text(state.get("status", "pending"), _STYLE.get(state.get("status", ""), "")),
            str(state.get("attempts", 0) or ""),
            f"{state['duration_s']:.2f}" if state.get("duration_s") is not None else "",
            f"{error.get('code', '')}: {error.get('message', '')}"[:80] if error else "",
        )
    parts: list[Any] = [head, table]
    if track.get("error"):
        error = track["error"]
        parts.append(Text(f"{error.get('code')}: {error.get('message')}", "red"))
    return Group(*parts)


def timeline(track: dict[str, Any], width: int = 48) -> Table:
    """Each step as a bar on one time axis from queueing to the end."""
    start = _when(track.get("queued_at")) or _when(track["created_at"])
    end = _when(track.get("finished_at")) or max(
        (parse_iso(s["finished_at"]) for s in track["steps"].values() if s.get("finished_at")),
        default=start,
    )
    span = max((end - start).total_seconds(), 1e-3) if start and end else 1.0
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("step")
    table.add_column(f"0 .. {span:.1f} s")
    table.add_column("start", justify="right")
    table.add_column("took", justify="right")
    for name in STEP_NAMES:
        state = track["steps"].get(name, {})
        began, finished = _when(state.get("started_at")), _when(state.get("finished_at"))
        if not (began and finished and start):
            table.add_row(name, Text(state.get("status", ""), "dim"), "", "")
            continue
        left = int((began - start).total_seconds() / span * width)
        length = max(1, int((finished - began).total_seconds() / span * width))
        bar = Text(" " * left) + Text("█" * length, _STYLE.get(state.get("status", ""), ""))
        table.add_row(
            name,
            bar,
            f"{(began - start).total_seconds():.2f}",
            f"{(finished - began).total_seconds():.2f}",
        )
    return table


def outputs_table(track: dict[str, Any]) -> Table:
    """Where the artifacts are; the artwork's 32 files show as one row, and so does the HLS
    ladder (its master playlist, with each variant's codec, bitrate and segments)."""
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("artifact")
    table.add_column("where", overflow="fold")
    outputs = track.get("outputs", {})
    artwork = sorted(name for name in outputs if name.startswith("artwork/"))
    if artwork:
        folder = outputs[artwork[0]].rsplit("/", 1)[0] + "/"
        table.add_row(f"artwork ({len(artwork)} files: 8 sizes and @2x, JPEG and WebP)", folder)
    master = track.get("stream", {}).get("playlists", {}).get(STREAM_MASTER)
    if master:
        variants = ", ".join(
            f"{v['codec'].upper() if v['codec'] == 'aac' else v['codec'].title()} "
            f"{v['bitrate_kbps']} kbps ({v['segments']} segments)"
            for v in track.get("stream", {}).get("variants", [])
        )
        table.add_row(f"HLS ladder: {variants}", master)
    for name, uri in sorted(outputs.items()):
        if not name.startswith("artwork/"):
            table.add_row(name, uri)
    return table
