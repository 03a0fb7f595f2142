"""How many workers a load needs: queueing theory, not a guess.

Each worker group is an M/M/c queue: tracks arrive at rate lambda (Poisson), each needs the sum
of its steps' service times in that group from one worker slot, and c slots serve them. Erlang C
gives the probability that a track waits at all, and the waiting-time tail
P(W > t) = C(c, a) * exp(-(c * mu - lambda) * t); the plan is the smallest c whose p95 wait is
within the target. All of that is pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from trackflow.domain.track import STEP_BY_NAME
from trackflow.settings import WorkerGroup

__all__ = [
    "GroupPlan",
    "erlang_c",
    "p95_wait",
    "plan",
    "tfvars",
]

# Seconds per step for a typical upload (a 5-minute stereo track), measured by `make bench`
# on one core of the development machine; the CLI prefers what `make bench` measured on this
# machine, `--durations` or `--from-state`.
DEFAULT_STEP_SECONDS = {
    "extract_metadata": 0.15,
    "resize_artwork": 0.6,
    "analyse_waveform": 3.6,
    "normalise_audio": 7.5,
    "check_copyright": 2.0,
    "transcode_128": 8.5,
    "transcode_192": 9.5,
    "transcode_320": 9.0,
    "stream_ladder": 9.0,
    "index_track": 0.3,
    "publish_feed": 0.2,
    "notify_uploader": 0.3,
}


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits (all ``servers`` busy), for offered load a = lambda/mu."""
    if offered_load <= 0:
        return 0.0
    if offered_load >= servers:
        return 1.0
    # Summed in a numerically stable way: terms a^k / k! built incrementally.
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= offered_load / k
        total += term
    last = term * offered_load / servers
    top = last * servers / (servers - offered_load)
    return top / (total + top)


def p95_wait(servers: int, arrival_rate: float, service_s: float, quantile: float = 0.95) -> float:
    """Waiting time (before service starts) that ``quantile`` of arrivals stay under."""
    offered = arrival_rate * service_s
    if offered >= servers:
        return math.inf
    waits = erlang_c(servers, offered)
    tail = 1 - quantile
    if waits <= tail:
        return 0.0
    drain = servers / service_s - arrival_rate
    return math.log(waits / tail) / drain


@dataclass(frozen=True)
class GroupPlan:
    group: WorkerGroup
    arrival_rate: float  # tracks per second
    service_s: float  # slot-seconds per track in this group
    workers: int  # slots (processes)
    utilisation: float
    p95_wait_s: float

    def tasks(self, concurrency: int) -> int:
        return max(1, math.ceil(self.workers / concurrency))


def plan(
    uploads_per_hour: float,
    step_seconds: Mapping[str, float] | None = None,
    *,
    p95_wait_target_s: float = 60.0,
    max_utilisation: float = 0.85,
) -> list[GroupPlan]:
    """Slots each worker group needs for the arrival rate and the waiting-time target."""
    step_seconds = {**DEFAULT_STEP_SECONDS, **(step_seconds or {})}
    arrival = uploads_per_hour / 3600.0
    plans = []
    for group in WorkerGroup:
        service = sum(s for name, s in step_seconds.items() if STEP_BY_NAME[name].group is group)
        workers = max(1, math.ceil(arrival * service / max_utilisation))
        while p95_wait(workers, arrival, service) > p95_wait_target_s:
            workers += 1
        plans.append(
            GroupPlan(
                group=group,
                arrival_rate=arrival,
                service_s=service,
                workers=workers,
                utilisation=arrival * service / workers,
                p95_wait_s=p95_wait(workers, arrival, service),
            )
        )
    return plans


def tfvars(
    plans: list[GroupPlan],
    concurrency: Mapping[WorkerGroup, int],
    *,
    p95_wait_target_s: float,
    peak_factor: float = 3.0,
) -> str:
    """A `services` variable for infra/: for each worker group, min holds the planned load, max
    absorbs ``peak_factor`` times it, and the backlog per task that autoscaling holds is what one
    task clears within the waiting-time target. The priority lanes get a fifth of that; so do
    the bulk lanes (the catalogue's indexing), which hold four times the backlog: no upload
    waits on them."""
    sizes = {WorkerGroup.CPU: (2048, 4096), WorkerGroup.IO: (512, 1024)}
    services = {
        "api": (512, 1024, 2, 10, 0, 0),
        "consumer": (256, 512, 1, 4, 200, 0),
    }
    for item in plans:
        slots = concurrency[item.group]
        minimum = item.tasks(slots)
        maximum = max(minimum + 1, math.ceil(minimum * peak_factor))
        backlog = max(1, math.floor(p95_wait_target_s * slots / max(item.service_s, 1e-3)))
        cpu, memory = sizes[item.group]
        services[f"{item.group}-standard"] = (cpu, memory, minimum, maximum, backlog, slots)
        fifth = max(1, math.ceil(minimum / 5))
        fifth_max = max(fifth + 1, math.ceil(maximum / 5))
        services[f"{item.group}-priority"] = (
            cpu,
            memory,
            fifth,
            fifth_max,
            max(1, backlog // 4),
            slots,
        )
        services[f"{item.group}-bulk"] = (cpu, memory, fifth, fifth_max, backlog * 4, slots)
    lines = ["# written by `trackflow capacity`", "services = {"]
    for name, (cpu, memory, low, high, backlog, slots) in services.items():
        lines.append(
            f'  "{name}" = {{ cpu = {cpu}, memory = {memory}, min = {low}, max = {high}, '
            f"backlog_per_task = {backlog}, concurrency = {slots} }}"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
