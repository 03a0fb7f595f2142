"""`trackflow worker`: a Celery worker for one worker group and lane."""

from __future__ import annotations

import os

import click

from trackflow.settings import Lane, WorkerGroup, get_settings
from trackflow.tasks.app import app
from trackflow.tasks.runtime import take_turns_at_cores
from trackflow.tasks.tuning import schedule_as_batch

__all__ = ["BULK_NICENESS", "worker"]

BULK_NICENESS = 10  # the bulk lane's workers yield the CPU to every other lane's


@click.command()
@click.option("--group", type=click.Choice([g.value for g in WorkerGroup]), required=True)
@click.option("--lane", type=click.Choice([lane.value for lane in Lane]), default="standard")
@click.option("--concurrency", type=int, default=None, help="processes (default: cores)")
def worker(group: str, lane: str, concurrency: int | None) -> None:
    """Run a Celery worker for one worker group and lane."""
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
