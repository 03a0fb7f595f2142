"""The `trackflow` command: run the stack, upload, follow, and everything ops need."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from trackflow.cli.client import ApiClient, ApiError
from trackflow.cli.display import outputs_table, steps_table, timeline
from trackflow.domain.track import TERMINAL, Status
from trackflow.logs import configure_logging
from trackflow.settings import Lane, WorkerGroup, get_settings

__all__ = ["main"]

err = Console(stderr=True)
out = Console()

EXIT_NOT_PUBLISHED = 1
EXIT_TIMEOUT = 3
BULK_NICENESS = 10  # the bulk lane's workers yield the CPU to every other lane's


def _token(user: str | None, token: str | None) -> str:
    from trackflow.auth import mint_token

    token = token or os.environ.get("TRACKFLOW_TOKEN")
    if token:
        return token
    if not user:
        raise click.UsageError("give --user NAME (local stack) or --token / TRACKFLOW_TOKEN")
    try:
        return mint_token(get_settings(), user)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--user") from error


def _client(user: str | None, token: str | None, api: str | None) -> ApiClient:
    return ApiClient(api or get_settings().api_url, _token(user, token))


identity = [
    click.option("--user", help="act as this user (local stack: a token is minted for you)"),
    click.option("--token", help="a bearer token (default: $TRACKFLOW_TOKEN)"),
    click.option("--api", help="the API's base URL (default: the local stack's)"),
]


def with_identity(function: Any) -> Any:
    for option in reversed(identity):
        function = option(function)
    return function


@click.group()
def main() -> None:
    """trackflow: audio upload processing on S3, SQS, Celery and DynamoDB."""


# --- the local stack and its roles -------------------------------------------------------------
@main.command()
@click.option("--cores", type=int, help="CPU worker processes (default: all cores)")
def up(cores: int | None) -> None:
    """Run the local stack in the foreground: emulator, API, consumer, workers."""
    from trackflow_devstack.stack import Stack, StackBusy

    configure_logging("up")
    stack = Stack(get_settings(), cores=cores)
    try:
        stack.start(on_event=lambda message: err.print(f"[green]✓[/] {message}"))
    except StackBusy as busy:
        err.print(f"[red]✗[/] {busy}")
        sys.exit(1)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
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
    err.print("[green]✓[/] stopped")
    sys.exit(code)


@main.command()
def emulator() -> None:
    """Serve the embedded AWS emulator (moto) on the loopback."""
    from trackflow_devstack.emulator import EmulatorServer

    configure_logging("emulator")
    settings = get_settings()
    server = EmulatorServer(settings.emulator_host, settings.emulator_port).start()
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    server.stop()


@main.command()
def bootstrap() -> None:
    """Create the buckets, queues, tables and notifications (idempotent)."""
    from trackflow.operations.bootstrap import bootstrap as run_bootstrap

    configure_logging("bootstrap")
    run_bootstrap(get_settings())


@main.command()
def api() -> None:
    """Serve the HTTP API."""
    import uvicorn

    configure_logging("api")
    settings = get_settings()
    uvicorn.run(
        "trackflow.api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )


@main.command()
def consumer() -> None:
    """Consume S3 events and launch workflows."""
    from trackflow.consumer.service import run_consumer

    configure_logging("consumer")
    run_consumer(get_settings())


@main.command()
@click.option("--group", type=click.Choice([g.value for g in WorkerGroup]), required=True)
@click.option("--lane", type=click.Choice([lane.value for lane in Lane]), default="standard")
@click.option("--concurrency", type=int, default=None, help="processes (default: cores)")
def worker(group: str, lane: str, concurrency: int | None) -> None:
    """Run a Celery worker for one worker group and lane."""
    from trackflow.tasks.app import app
    from trackflow.tasks.runtime import take_turns_at_cores
    from trackflow.tasks.tuning import schedule_as_batch

    settings = get_settings()
    queue = settings.queue(WorkerGroup(group), Lane(lane))
    if WorkerGroup(group) is WorkerGroup.CPU and Lane(lane) is not Lane.PRIORITY:
        # its pool processes and their ffmpeg inherit it; the priority lane's keep the right
        # to preempt, as the uploads it serves are waited for
        schedule_as_batch()
    if WorkerGroup(group) is WorkerGroup.CPU and Lane(lane) is Lane.STANDARD:
        # the backlog's lane: its steps share no core while others wait (the small priority
        # and bulk lanes take none, so that they never wait behind it)
        take_turns_at_cores(settings, os.cpu_count() or 2)
    if Lane(lane) is Lane.BULK:
        # Work no upload waits for: on a host shared with the pipeline's workers it gets only
        # the CPU they leave (measured in `make bench-e2e`); alone on its hosts, as in AWS, all.
        os.nice(BULK_NICENESS)
    app.worker_main(
        [
            "worker",
            "--queues",
            queue,
            "--hostname",
            f"{group}-{lane}@%h",
            "--concurrency",
            str(concurrency or os.cpu_count() or 2),
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]
    )


@main.command()
@click.option("--user", required=True)
def token(user: str) -> None:
    """Print a bearer token for USER (local stacks, from the local secret)."""
    out.print(_token(user, None), soft_wrap=True)


# --- uploading and following -------------------------------------------------------------------
def _upload(client: ApiClient, path: Path) -> dict[str, Any]:
    created = client.create_upload(path)
    size = path.stat().st_size
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=not err.is_terminal,
    ) as progress:
        bar = progress.add_task(f"uploading {path.name}", total=size)
        client.send_file(created["upload"], path, lambda n: progress.advance(bar, n))
    return created


def _follow(client: ApiClient, track_id: str, timeout_s: float) -> dict[str, Any]:
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


def _finish(track: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(track))
    else:
        out.print(steps_table(track))
        if track.get("outputs"):
            out.print(outputs_table(track))
    if track["status"] == Status.PUBLISHED:
        sys.exit(0)
    sys.exit(EXIT_NOT_PUBLISHED if track["status"] in TERMINAL else EXIT_TIMEOUT)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_identity
@click.option("--wait", is_flag=True, help="follow processing to a terminal state")
@click.option("--json", "as_json", is_flag=True, help="print the track record as JSON")
@click.option("--timeout", default=1800.0, show_default=True, help="seconds to wait")
def upload(
    file: Path,
    user: str | None,
    token: str | None,
    api: str | None,
    wait: bool,
    as_json: bool,
    timeout: float,
) -> None:
    """Upload FILE; with --wait, follow it until it is published, rejected or failed."""
    with _client(user, token, api) as client:
        try:
            created = _upload(client, file)
        except ApiError as error:
            err.print(f"[red]✗[/] {error.code}: {error.message}")
            sys.exit(EXIT_NOT_PUBLISHED)
        track_id = created["track_id"]
        err.print(f"[green]✓[/] uploaded as track {track_id}")
        track = _follow(client, track_id, timeout) if wait else client.track(track_id)
    if not wait:
        out.print_json(json.dumps(track)) if as_json else out.print(track_id)
        return
    _finish(track, as_json)


@main.command()
@click.argument("track_id")
@with_identity
@click.option("--watch", is_flag=True, help="follow it until it reaches a terminal state")
@click.option("--json", "as_json", is_flag=True, help="print the track record as JSON")
@click.option("--timeout", default=1800.0, show_default=True, help="seconds to watch")
def status(
    track_id: str,
    user: str | None,
    token: str | None,
    api: str | None,
    watch: bool,
    as_json: bool,
    timeout: float,
) -> None:
    """Show a track's record (exit 0 only when published)."""
    with _client(user, token, api) as client:
        try:
            track = _follow(client, track_id, timeout) if watch else client.track(track_id)
        except ApiError as error:
            err.print(f"[red]✗[/] {error.code}: {error.message}")
            sys.exit(EXIT_NOT_PUBLISHED)
    _finish(track, as_json)


# --- the demo behind `make run` ----------------------------------------------------------------
DEMO_TRACKS = [
    ("Morning Drive", "The Generators", 24.0, 11),
    ("Cobalt Avenue", "Sine & Saw", 32.0, 23),
    ("Überfahrt (Nachtmix)", "Ægir Ensemble", 18.0, 37),
]


@main.command()
@click.option("--user", default="demo", show_default=True)
@click.option("--timeout", default=900.0, show_default=True)
def demo(user: str, timeout: float) -> None:
    """Run the main job end to end: start the stack, upload generated tracks, follow them,
    print each one's timeline and outputs. Exit 0 only if every track was published."""
    from trackflow_devstack.stack import Stack, StackBusy

    from trackflow.media.samples import SampleTrack, write_track

    configure_logging("demo", level="WARNING")
    settings = get_settings()
    stack = Stack(settings)
    started = False
    try:
        stack.start(on_event=lambda message: err.print(f"[green]✓[/] {message}"))
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
        client = ApiClient(settings.api_url, _token(user, None))
        track_ids = []
        for index, (title, artist, seconds, seed) in enumerate(DEMO_TRACKS, start=1):
            path = samples_dir / f"{index:02d} {title}.mp3"
            sample = SampleTrack(title, artist, seconds=seconds, seed=seed, track_number=index)
            write_track(sample, path)
            track_ids.append(_upload(client, path)["track_id"])
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
    deadline = time.monotonic() + timeout_s
    latest: dict[str, dict[str, Any]] = {}

    def board() -> Table:
        table = Table(box=None, header_style="bold")
        for column in ("track", "status", "progress", "running"):
            table.add_column(column)
        for track_id in track_ids:
            t = latest.get(track_id)
            if t:
                running = [n for n, s in t["steps"].items() if s.get("status") == "running"]
                table.add_row(track_id[:8], t["status"], f"{t['progress']}%", ", ".join(running))
        return table

    with Live(board(), console=err, refresh_per_second=4, transient=not err.is_terminal) as live:
        while True:
            for track_id in track_ids:
                latest[track_id] = client.track(track_id)
            live.update(board())
            if all(t["status"] in TERMINAL for t in latest.values()) or time.monotonic() > deadline:
                return [latest[t] for t in track_ids]
            time.sleep(0.5)


# --- the copyright catalogue and reviews (administrators) --------------------------------------
admin_identity = [
    click.option("--user", default="admin", show_default=True, help="an administrator"),
    click.option("--token", help="a bearer token (default: $TRACKFLOW_TOKEN)"),
    click.option("--api", help="the API's base URL (default: the local stack's)"),
]


def with_admin_identity(function: Any) -> Any:
    for option in reversed(admin_identity):
        function = option(function)
    return function


def _fail(error: ApiError) -> None:
    err.print(f"[red]✗[/] {error.code}: {error.message}")
    sys.exit(EXIT_NOT_PUBLISHED)


@main.group()
def catalogue() -> None:
    """The catalogue of reference works that uploads are checked against."""


@catalogue.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True)
@click.option("--owner", required=True, help="the rights holder")
@with_admin_identity
@click.option("--wait/--no-wait", default=True, help="wait until the work is indexed")
@click.option("--timeout", default=600.0, show_default=True)
def catalogue_add(
    file: Path,
    title: str,
    owner: str,
    user: str,
    token: str | None,
    api: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Register FILE as a reference work owned by OWNER."""
    from trackflow.cli.client import guess_content_type

    with _client(user, token, api) as client:
        try:
            created = client.request(
                "POST",
                "/v1/catalogue/works",
                json={
                    "title": title,
                    "owner": owner,
                    "filename": file.name,
                    "content_type": guess_content_type(file),
                    "size": file.stat().st_size,
                },
            )
            client.send_file(created["upload"], file)
            work = created["work"]
            deadline = time.monotonic() + timeout
            while wait and work["status"] not in ("active", "failed"):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
                work = client.request("GET", f"/v1/catalogue/works/{work['work_id']}")
        except ApiError as error:
            _fail(error)
    out.print_json(json.dumps(work))
    sys.exit(0 if work["status"] in ("active", "indexing", "awaiting_upload") else 1)


@catalogue.command("list")
@click.option("--owner", help="only this rights holder's works")
@with_admin_identity
@click.option("--json", "as_json", is_flag=True)
def catalogue_list(
    owner: str | None, user: str, token: str | None, api: str | None, as_json: bool
) -> None:
    """List the works in the catalogue."""
    with _client(user, token, api) as client:
        works, cursor = [], None
        try:
            while True:
                params = {
                    "limit": 500,
                    **({"owner": owner} if owner else {}),
                    **({"cursor": cursor} if cursor else {}),
                }
                page = client.request("GET", "/v1/catalogue/works", params=params)
                works += page["works"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
        except ApiError as error:
            _fail(error)
    if as_json:
        out.print_json(json.dumps(works))
        return
    table = Table(box=None, header_style="bold")
    for column in ("work", "title", "owner", "status", "seconds", "landmarks"):
        table.add_column(column)
    for work in works:
        table.add_row(
            work["work_id"],
            work["title"],
            work["owner"],
            work["status"],
            str(work.get("duration_s", "")),
            str(work.get("landmarks", "")),
        )
    out.print(table)


@catalogue.command("remove")
@click.argument("work_id")
@with_admin_identity
def catalogue_remove(work_id: str, user: str, token: str | None, api: str | None) -> None:
    """Take WORK_ID out of the catalogue (it stops matching at once)."""
    with _client(user, token, api) as client:
        try:
            work = client.request("DELETE", f"/v1/catalogue/works/{work_id}")
        except ApiError as error:
            _fail(error)
    err.print(f"[green]✓[/] removed {work['work_id']} ({work['title']})")


@main.group()
def review() -> None:
    """Tracks held for copyright review."""


@review.command("list")
@with_admin_identity
@click.option("--json", "as_json", is_flag=True)
def review_list(user: str, token: str | None, api: str | None, as_json: bool) -> None:
    """Tracks waiting for a reviewer."""
    with _client(user, token, api) as client:
        try:
            held = client.request("GET", "/v1/reviews")["tracks"]
        except ApiError as error:
            _fail(error)
    if as_json:
        out.print_json(json.dumps(held))
        return
    table = Table(box=None, header_style="bold")
    for column in ("track", "owner", "title", "matched work", "where"):
        table.add_column(column)
    for track in held:
        match = (track.get("copyright", {}).get("matches") or [{}])[0]
        table.add_row(
            track["track_id"],
            track["owner"],
            track.get("metadata", {}).get("tags", {}).get("title", ""),
            f"{match.get('title', '')} ({match.get('work_id', '')})",
            f"{match.get('upload_offset_s', '')} s",
        )
    out.print(table)


def _decide(
    decision: str, track_id: str, note: str, user: str, token: str | None, api: str | None
) -> None:
    with _client(user, token, api) as client:
        try:
            track = client.request(
                "POST", f"/v1/reviews/{track_id}", json={"decision": decision, "note": note}
            )
        except ApiError as error:
            _fail(error)
    err.print(f"[green]✓[/] {track_id}: {track['status']}")


@review.command("approve")
@click.argument("track_id")
@click.option("--note", default="")
@with_admin_identity
def review_approve(track_id: str, note: str, user: str, token: str | None, api: str | None) -> None:
    """Release TRACK_ID: its renditions are made and it is published."""
    _decide("approve", track_id, note, user, token, api)


@review.command("reject")
@click.argument("track_id")
@click.option("--note", default="")
@with_admin_identity
def review_reject(track_id: str, note: str, user: str, token: str | None, api: str | None) -> None:
    """Confirm the match: TRACK_ID is rejected and its uploader told why."""
    _decide("reject", track_id, note, user, token, api)


# --- search, follows, feeds and accounts -------------------------------------------------------
@main.command()
@click.argument("query")
@with_identity
@click.option("--limit", default=20, show_default=True)
@click.option("--offset", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def search(
    query: str,
    user: str | None,
    token: str | None,
    api: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Search published tracks (prefixes, any case, with or without accents)."""
    with _client(user, token, api) as client:
        try:
            page = client.request(
                "GET", "/v1/search", params={"q": query, "limit": limit, "offset": offset}
            )
        except ApiError as error:
            _fail(error)
    if as_json:
        out.print_json(json.dumps(page))
        return
    table = Table(box=None, header_style="bold", title=f"{page['total']} tracks")
    for column in ("title", "artist", "album", "uploader", "track"):
        table.add_column(column)
    for hit in page["hits"]:
        table.add_row(hit["title"], hit["artist"], hit["album"], hit["uploader"], hit["track_id"])
    out.print(table)


@main.command()
@click.argument("whom")
@with_identity
def follow(whom: str, user: str | None, token: str | None, api: str | None) -> None:
    """Follow WHOM: their next tracks reach your feed."""
    with _client(user, token, api) as client:
        try:
            client.request("POST", f"/v1/users/{whom}/followers")
        except ApiError as error:
            _fail(error)
    err.print(f"[green]✓[/] following {whom}")


@main.command()
@click.argument("whom")
@with_identity
def unfollow(whom: str, user: str | None, token: str | None, api: str | None) -> None:
    """Stop following WHOM."""
    with _client(user, token, api) as client:
        try:
            client.request("DELETE", f"/v1/users/{whom}/followers")
        except ApiError as error:
            _fail(error)
    err.print(f"[green]✓[/] no longer following {whom}")


@main.command()
@with_identity
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def feed(user: str | None, token: str | None, api: str | None, limit: int, as_json: bool) -> None:
    """Your feed: tracks published by the people you follow, newest first."""
    with _client(user, token, api) as client:
        try:
            page = client.request("GET", "/v1/feed", params={"limit": limit})
        except ApiError as error:
            _fail(error)
    if as_json:
        out.print_json(json.dumps(page))
        return
    table = Table(box=None, header_style="bold")
    for column in ("when", "who", "title", "artist", "track"):
        table.add_column(column)
    for entry in page["entries"]:
        table.add_row(
            entry["created_at"][:16],
            entry["owner"],
            entry["title"],
            entry["artist"],
            entry["track_id"],
        )
    out.print(table)


@main.command()
@with_identity
@click.option("--email", help="where your emails go")
@click.option("--emails/--no-emails", "emails", default=None, help="opt in to or out of emails")
def profile(
    user: str | None, token: str | None, api: str | None, email: str | None, emails: bool | None
) -> None:
    """Show (or change) your profile."""
    changes = {
        k: v
        for k, v in (("email", email), ("email_opt_out", None if emails is None else not emails))
        if v is not None
    }
    with _client(user, token, api) as client:
        try:
            me = (
                client.request("PATCH", "/v1/me", json=changes)
                if changes
                else client.request("GET", "/v1/me")
            )
        except ApiError as error:
            _fail(error)
    out.print_json(json.dumps(me))


@main.command()
@click.argument("account")
@click.option("--priority/--no-priority", default=None, help="give ACCOUNT its own lane")
@with_admin_identity
def account(
    account: str, priority: bool | None, user: str, token: str | None, api: str | None
) -> None:
    """Administrators: change ACCOUNT's flags."""
    with _client(user, token, api) as client:
        try:
            updated = client.request(
                "PATCH",
                f"/v1/users/{account}",
                json={} if priority is None else {"priority": priority},
            )
        except ApiError as error:
            _fail(error)
    out.print_json(json.dumps(updated))


@main.command()
@click.argument("track_id")
@with_identity
def reprocess(track_id: str, user: str | None, token: str | None, api: str | None) -> None:
    """Run TRACK_ID's workflow again (outputs replaced in place, nothing sent twice)."""
    with _client(user, token, api) as client:
        try:
            track = client.request("POST", f"/v1/tracks/{track_id}/reprocess")
        except ApiError as error:
            _fail(error)
    err.print(f"[green]✓[/] {track_id} is {track['status']} again")


# --- operations: these talk to AWS directly, with the operator's credentials ------------------
@main.command()
def sweep() -> None:
    """Resume or fail tracks that stopped moving; admit uploads whose event was lost."""
    from trackflow.tasks.recovery import sweep as run_sweep

    configure_logging("sweep", level="WARNING")
    out.print_json(json.dumps(run_sweep(get_settings()).as_record()))


@main.command()
def reconcile() -> None:
    """Admit every uploaded object that never produced an event."""
    from trackflow.tasks.recovery import reconcile as run_reconcile

    configure_logging("reconcile", level="WARNING")
    admitted = run_reconcile(get_settings())
    err.print(f"[green]✓[/] admitted {len(admitted)} uploads")
    for track_id in admitted:
        out.print(track_id)


@main.group()
def dlq() -> None:
    """Dead-letter queues: what is in them, and replaying it."""


@dlq.command("list")
@click.option("--limit", default=10, show_default=True, help="messages shown per queue")
@click.option("--json", "as_json", is_flag=True)
def dlq_list(limit: int, as_json: bool) -> None:
    """How many messages each dead-letter queue holds, and the first few."""
    from trackflow.operations.deadletters import counts, peek

    settings = get_settings()
    waiting = counts(settings)
    letters = {
        q: [vars(letter) for letter in peek(settings, q, limit)] if n else []
        for q, n in waiting.items()
    }
    if as_json:
        out.print_json(json.dumps({"counts": waiting, "messages": letters}))
        return
    for queue, count in waiting.items():
        out.print(f"[bold]{queue}[/]: {count}")
        for letter in letters[queue]:
            out.print(f"  {letter['message_id'][:8]} x{letter['receives']} {letter['summary']}")


@dlq.command("redrive")
@click.option("--queue", help="one source queue (default: all)")
@click.option("--max", "limit", type=int, help="move at most this many a queue")
def dlq_redrive(queue: str | None, limit: int | None) -> None:
    """Move dead letters back to the queues they came from."""
    from trackflow.operations.deadletters import redrive

    settings = get_settings()
    queues = [queue] if queue else settings.all_queues
    if queue and queue not in settings.all_queues:
        raise click.BadParameter(f"one of {', '.join(settings.all_queues)}", param_hint="--queue")
    for name in queues:
        moved = redrive(settings, name, limit)
        err.print(f"[green]✓[/] {name}: {moved} moved back")


@main.command()
@click.option("--uploads-per-hour", type=float, required=True)
@click.option(
    "--p95-wait",
    "p95_wait",
    type=float,
    default=60.0,
    show_default=True,
    help="target: seconds 95% of tracks wait for a worker, in each group",
)
@click.option(
    "--durations",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON of step -> seconds (default: what `make bench` measured here, if it ran)",
)
@click.option("--from-state", is_flag=True, help="use the step times of recent published tracks")
@click.option("--cpu-concurrency", default=2, show_default=True, help="slots per CPU task")
@click.option("--io-concurrency", default=4, show_default=True, help="slots per I/O task")
@click.option(
    "--tfvars",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the services' scaling to this tfvars file",
)
def capacity(
    uploads_per_hour: float,
    p95_wait: float,
    durations: Path | None,
    from_state: bool,
    cpu_concurrency: int,
    io_concurrency: int,
    tfvars: Path | None,
) -> None:
    """Workers each queue group needs for a load (Erlang C), and the autoscaling to match."""
    from trackflow.operations import capacity as planner

    measured = Path(get_settings().data_dir) / "bench" / "steps.json"
    durations = durations or (measured if measured.exists() else None)
    steps = json.loads(durations.read_text()) if durations else None
    if from_state:
        steps = _recent_step_seconds()
    source = "recent tracks" if from_state else durations or "typical step times (no bench ran)"
    err.print(f"step times from {source}")
    plans = planner.plan(uploads_per_hour, steps, p95_wait_target_s=p95_wait)
    table = Table(
        box=None,
        header_style="bold",
        title=f"{uploads_per_hour:g} uploads an hour, p95 wait under {p95_wait:g} s",
    )
    for column in (
        "group",
        "arrivals/s",
        "service s/track",
        "utilisation",
        "workers",
        "tasks",
        "p95 wait s",
    ):
        table.add_column(column, justify="right")
    slots = {WorkerGroup.CPU: cpu_concurrency, WorkerGroup.IO: io_concurrency}
    for item in plans:
        table.add_row(
            str(item.group),
            f"{item.arrival_rate:.4f}",
            f"{item.service_s:.1f}",
            f"{item.utilisation:.0%}",
            str(item.workers),
            str(item.tasks(slots[item.group])),
            f"{item.p95_wait_s:.1f}",
        )
    out.print(table)
    if tfvars:
        tfvars.write_text(planner.tfvars(plans, slots, p95_wait_target_s=p95_wait))
        err.print(f"[green]✓[/] wrote {tfvars}")


def _recent_step_seconds(limit: int = 200) -> dict[str, float]:
    """Mean duration of each step over the most recently published tracks."""
    from trackflow.adapters import aws
    from trackflow.adapters.state.tracks import TrackStore

    settings = get_settings()
    store = TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))
    tracks = store.list_by_status(Status.PUBLISHED, limit=limit)
    totals: dict[str, list[float]] = {}
    for track in tracks:
        for name, state in track["steps"].items():
            if state.get("duration_s") is not None:
                totals.setdefault(name, []).append(float(state["duration_s"]))
    if not totals:
        raise click.ClickException("no published track has step times yet")
    return {name: sum(values) / len(values) for name, values in totals.items()}
