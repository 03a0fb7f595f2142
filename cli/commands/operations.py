"""Operators' commands: `sweep`, `reconcile`, `dlq`, `capacity`, `backfill-quads`. They talk
to AWS directly, with the operator's credentials and settings, not through the API."""

from __future__ import annotations

import json
from pathlib import Path

import click

from trackflow.adapters import aws
from trackflow.adapters.state.tracks import TrackStore
from trackflow.cli.console import done, err, out, table
from trackflow.domain.track import Status
from trackflow.logs import configure_logging
from trackflow.operations import capacity as planner
from trackflow.operations.deadletters import counts, peek, redrive
from trackflow.settings import Lane, WorkerGroup, get_settings
from trackflow.tasks.recovery import reconcile as admit_unannounced
from trackflow.tasks.recovery import sweep as sweep_once

__all__ = ["backfill_quads", "capacity", "dlq", "reconcile", "sweep"]


@click.command()
def sweep() -> None:
    """Resume or fail tracks that stopped moving; admit uploads whose event was lost."""
    configure_logging("sweep", level="WARNING")
    out.print_json(json.dumps(sweep_once(get_settings()).as_record()))


@click.command()
def reconcile() -> None:
    """Admit every uploaded object that never produced an event."""
    configure_logging("reconcile", level="WARNING")
    admitted = admit_unannounced(get_settings())
    done(f"admitted {len(admitted)} uploads")
    for track_id in admitted:
        out.print(track_id)


@click.command("backfill-quads")
def backfill_quads() -> None:
    """Give every work indexed before quads existed its quads, so that the copyright check
    finds it sped up, slowed or pitch-shifted too (one bulk task per work)."""
    configure_logging("backfill-quads", level="WARNING")
    from trackflow.adapters.state.catalogue import MATCHABLE
    from trackflow.tasks.catalogue import add_quads, catalogue_store

    settings = get_settings()
    catalogue = catalogue_store(settings)
    queue = settings.queue(WorkerGroup.CPU, Lane.BULK)
    sent, cursor = 0, None
    while True:
        works, cursor = catalogue.list(limit=500, cursor=cursor)
        for work in works:
            if work.get("status") in MATCHABLE and not work.get("quads_key"):
                add_quads.apply_async((work["work_id"],), queue=queue)
                sent += 1
        if not cursor:
            break
    done(f"works sent for quads: {sent}")


@click.group()
def dlq() -> None:
    """Dead-letter queues: what is in them, and replaying it."""


@dlq.command("list")
@click.option("--limit", default=10, show_default=True, help="messages shown per queue")
@click.option("--json", "as_json", is_flag=True)
def dlq_list(limit: int, as_json: bool) -> None:
    """How many messages each dead-letter queue holds, and the first few."""
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
    settings = get_settings()
    queues = [queue] if queue else settings.all_queues
    if queue and queue not in settings.all_queues:
        raise click.BadParameter(f"one of {', '.join(settings.all_queues)}", param_hint="--queue")
    for name in queues:
        moved = redrive(settings, name, limit)
        done(f"{name}: {moved} moved back")


@click.command()
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
    measured = Path(get_settings().data_dir) / "bench" / "steps.json"
    durations = durations or (measured if measured.exists() else None)
    steps = json.loads(durations.read_text()) if durations else None
    if from_state:
        steps = _recent_step_seconds()
    source = "recent tracks" if from_state else durations or "typical step times (no bench ran)"
    err.print(f"step times from {source}")
    plans = planner.plan(uploads_per_hour, steps, p95_wait_target_s=p95_wait)
    rows = table(
        "group",
        "arrivals/s",
        "service s/track",
        "utilisation",
        "workers",
        "tasks",
        "p95 wait s",
        title=f"{uploads_per_hour:g} uploads an hour, p95 wait under {p95_wait:g} s",
        justify="right",
    )
    slots = {WorkerGroup.CPU: cpu_concurrency, WorkerGroup.IO: io_concurrency}
    for item in plans:
        rows.add_row(
            str(item.group),
            f"{item.arrival_rate:.4f}",
            f"{item.service_s:.1f}",
            f"{item.utilisation:.0%}",
            str(item.workers),
            str(item.tasks(slots[item.group])),
            f"{item.p95_wait_s:.1f}",
        )
    out.print(rows)
    if tfvars:
        tfvars.write_text(planner.tfvars(plans, slots, p95_wait_target_s=p95_wait))
        done(f"wrote {tfvars}")


def _recent_step_seconds(limit: int = 200) -> dict[str, float]:
    """Mean duration of each step over the most recently published tracks."""
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
