"""The local stack's commands: `trackflow up`, `trackflow emulator` and `trackflow demo` (what
`make run` runs). They reach `trackflow` through the entry point group "trackflow.commands"
(devstack/pyproject.toml), so that an install without this distribution has none of them."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.live import Live
from rich.table import Table

from trackflow.cli.client import ApiClient
from trackflow.cli.console import EXIT_NOT_PUBLISHED, done, err, out, table
from trackflow.cli.display import outputs_table, timeline
from trackflow.cli.identity import bearer_token
from trackflow.cli.progress import upload_with_progress
from trackflow.domain.track import TERMINAL, Status
from trackflow.logs import configure_logging
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import get_settings
from trackflow_devstack.emulator import EmulatorServer
from trackflow_devstack.stack import Stack, StackBusy

__all__ = ["demo", "emulator", "up"]


def _stop_on_signals() -> threading.Event:
    """An event that Ctrl-C or SIGTERM sets, for a foreground loop to stop cleanly."""
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


@click.command()
@click.option("--cores", type=int, help="CPU worker processes (default: all cores)")
def up(cores: int | None) -> None:
    """Run the local stack in the foreground: emulator, API, consumer, workers."""
    configure_logging("up")
    stack = Stack(get_settings(), cores=cores)
    try:
        stack.start(on_event=done)
    except StackBusy as busy:
        err.print(f"[red]✗[/] {busy}")
        sys.exit(1)
    stopping = _stop_on_signals()
    err.print("[bold]trackflow is up.[/] Ctrl-C stops it.")
    code = 0
    while not stopping.wait(1.0):
        dead = stack.dead()
        if dead:
            names = ", ".join(f"{r.name} (exit {r.process.returncode})" for r in dead if r.process)
            err.print(f"[red]✗[/] stopped unexpectedly: {names}; see {stack.log_dir}")
            code = 1
            break
    err.print("stopping…")
    stack.stop()
    done("stopped")
    sys.exit(code)


@click.command()
def emulator() -> None:
    """Serve the embedded AWS emulator (moto) on the loopback."""
    configure_logging("emulator")
    settings = get_settings()
    server = EmulatorServer(settings.emulator_host, settings.emulator_port).start()
    _stop_on_signals().wait()
    server.stop()


DEMO_TRACKS = [
    ("Morning Drive", "The Generators", 24.0, 11),
    ("Cobalt Avenue", "Sine & Saw", 32.0, 23),
    ("Überfahrt (Nachtmix)", "Ægir Ensemble", 18.0, 37),
]


@click.command()
@click.option("--user", default="demo", show_default=True)
@click.option("--timeout", default=900.0, show_default=True)
def demo(user: str, timeout: float) -> None:
    """Run the main job end to end: start the stack, upload generated tracks, follow them,
    print each one's timeline and outputs. Exit 0 only if every track was published."""
    configure_logging("demo", level="WARNING")
    settings = get_settings()
    stack = Stack(settings)
    started = False
    try:
        stack.start(on_event=done)
        started = True
    except StackBusy as busy:
        if not _api_healthy(settings.api_url):
            err.print(f"[red]✗[/] {busy}, but its API does not answer: it is starting or stopping")
            sys.exit(1)
        err.print("[yellow]•[/] using the stack that is already up")
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop what we started, however we are stopped
        signal.signal(sig, lambda number, _: sys.exit(128 + number))
    code = EXIT_NOT_PUBLISHED
    try:
        samples_dir = Path(settings.data_dir) / "samples"
        samples_dir.mkdir(parents=True, exist_ok=True)
        client = ApiClient(settings.api_url, bearer_token(user, None))
        track_ids = []
        for index, (title, artist, seconds, seed) in enumerate(DEMO_TRACKS, start=1):
            path = samples_dir / f"{index:02d} {title}.mp3"
            sample = SampleTrack(title, artist, seconds=seconds, seed=seed, track_number=index)
            write_track(sample, path)
            track_ids.append(upload_with_progress(client, path)["track_id"])
        tracks = _follow_all(client, track_ids, timeout)
        for track in tracks:
            title = track.get("metadata", {}).get("tags", {}).get("title", track["track_id"])
            out.rule(f"{title} — {track['status']}")
            if track.get("error"):
                out.print(f"[red]{track['error']['code']}: {track['error']['message']}[/]")
            out.print(timeline(track))
            out.print(outputs_table(track))
        published = sum(t["status"] == Status.PUBLISHED for t in tracks)
        out.print(f"[bold]{published} of {len(tracks)} tracks published.[/]")
        code = 0 if published == len(tracks) else EXIT_NOT_PUBLISHED
    finally:
        if started:
            err.print("stopping the stack…")
            stack.stop()
    sys.exit(code)


def _api_healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _follow_all(client: ApiClient, track_ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    """Poll every track until all are terminal (or the timeout passes), with one live board."""
    deadline = time.monotonic() + timeout_s
    latest: dict[str, dict[str, Any]] = {}

    def board() -> Table:
        rows = table("track", "status", "progress", "running")
        for track_id in track_ids:
            t = latest.get(track_id)
            if t:
                running = [n for n, s in t["steps"].items() if s.get("status") == "running"]
                rows.add_row(track_id[:8], t["status"], f"{t['progress']}%", ", ".join(running))
        return rows

    with Live(board(), console=err, refresh_per_second=4, transient=not err.is_terminal) as live:
        while True:
            for track_id in track_ids:
                latest[track_id] = client.track(track_id)
            live.update(board())
            if all(t["status"] in TERMINAL for t in latest.values()) or time.monotonic() > deadline:
                return [latest[t] for t in track_ids]
            time.sleep(0.5)
