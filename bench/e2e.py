"""The whole system against the bare media work on the same cores (`make bench-e2e`).

A batch of generated tracks (tagged, with cover art) is processed both ways in one run, in turns:

1. bare: the media core of every step called directly, one track per process, in a pool of as
   many processes as cores (batch-scheduled, as the CPU workers are); no Celery, SQS, S3 or
   DynamoDB;
2. the system: `trackflow up` on the embedded emulator, every track uploaded at once through
   presigned URLs, timed until the last is published;
3. bare again. A shared virtual machine's cores change speed from minute to minute, so the
   system is compared with the mean of the bare runs either side of it, and the bench prints
   both, and the share of the cores the hypervisor took (steal) in each phase.

Steps 2 and 3 repeat for ``--rounds`` (five by default), each on a fresh stack. One round's
ratio moves between runs of the same code by more than most changes under test
(docs/performance.md), so the bench reports the median round's ratio,
every round's beside it, and the median round's details.

Before the batch, one longer track on the idle stack (after a short warm-up track, as a stack
in service would have run) gives the critical path (the longest chain of step
times through the stages) against its upload-to-published latency. Each phase starts on a quiet
stack, and the batch's CPU seconds are counted until its own background work (the catalogue
joining each published track) is done: what the batch cost, no more and no less. Each step's
CPU seconds (its process and its ffmpeg) stand beside the bare media work's. Figures are
written to .trackflow/bench/e2e.json; the scratch folder goes unless a track failed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from bench.media import make_inputs, ours


def bare_track(track: str) -> dict[str, tuple[float, float]]:
    """Every step's media work on one track, in order; returns each step's wall and CPU
    seconds."""
    from trackflow.tasks.tuning import cpu_seconds

    with tempfile.TemporaryDirectory() as work:
        took = {}
        for name, step in ours(Path(track), Path(work)).items():
            started, cpu = time.perf_counter(), cpu_seconds()
            step()
            took[name] = (time.perf_counter() - started, cpu_seconds() - cpu)
        return took


class BareRun(NamedTuple):
    wall_s: float
    cpu_s: float  # the pool's processes and their ffmpeg
    steps: list[dict[str, tuple[float, float]]]  # per track: each step's wall and CPU seconds
    steal: float  # the share of the cores the hypervisor gave to others meanwhile


def bare(tracks: list[Path], cores: int) -> BareRun:
    """The media work of every track in a pool of ``cores`` processes, scheduled as batch work
    as the system's CPU workers are: the limit has the same advantage (without it, the same
    work took 9% longer in two processes side by side)."""
    from trackflow.tasks.tuning import schedule_as_batch

    clock = cpu_clock()
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with ProcessPoolExecutor(cores, initializer=schedule_as_batch) as pool:
        steps = list(pool.map(bare_track, map(str, tracks)))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool has exited and been reaped
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return BareRun(time.perf_counter() - started, cpu, steps, steal_share(clock, cpu_clock()))


def cpu_clock() -> tuple[int, int]:
    """The host's (steal, total) CPU time so far, in ticks; (0, 0) where /proc/stat is missing."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the cores the hypervisor gave to others between two ``cpu_clock()``s."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def use_own_stack(scratch: Path) -> None:
    """Settings for a stack of the bench's own, set before anything reads them: fresh state
    under ``scratch``, free ports, nothing shared with a running `trackflow up`."""
    os.environ.update(
        {
            "TRACKFLOW_AWS_TARGET": "embedded",
            "TRACKFLOW_DATA_DIR": str(scratch / "data"),
            "TRACKFLOW_EMULATOR_PORT": str(_free_port()),
            "TRACKFLOW_API_PORT": str(_free_port()),
            "TRACKFLOW_LOG_LEVEL": "WARNING",
        }
    )


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of a role's process and its children (a worker's pool and the ffmpeg it ran)."""
    total = 0.0
    for member in [process, *process.children()]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _slowest_branch_s(stage: Any, steps: dict[str, Any]) -> float:
    return max(
        sum(float(steps[s].get("duration_s", 0)) for s in branch) for branch in stage.branches
    )


def critical_path(track: dict[str, Any]) -> float:
    """The longest chain of step times: per stage, its slowest branch."""
    from trackflow.domain.track import STAGES

    return sum(_slowest_branch_s(stage, track["steps"]) for stage in STAGES)


def _when(iso: str) -> float:
    from trackflow.adapters.state.dynamo import parse_iso

    return parse_iso(iso).timestamp()


def queue_waits(track: dict[str, Any]) -> dict[str, float]:
    """Per finished step, seconds between being ready and starting its work: time in a queue,
    waiting for a free worker slot, or for a core."""
    from trackflow.domain.track import queued_s

    finished = [name for name, step in track["steps"].items() if "finished_at" in step]
    waits = {name: queued_s(track, name) for name in finished}
    return {name: wait for name, wait in waits.items() if wait is not None}


def overhead_parts(track: dict[str, Any], uploaded: float) -> dict[str, float]:
    """Where one track's latency beyond its critical path goes; the parts add up to it."""
    from trackflow.domain.track import STAGES

    steps, launched = track["steps"], track["stages"]
    parts = {"upload to first stage launched": _when(launched[STAGES[0].name]) - uploaded}
    beyond = join = 0.0
    finished_before = None
    for stage in STAGES:
        launch = _when(launched[stage.name])
        if finished_before is not None:
            join += launch - finished_before
        finished_before = max(_when(steps[n]["finished_at"]) for b in stage.branches for n in b)
        beyond += finished_before - launch - _slowest_branch_s(stage, steps)
    parts["stages beyond their longest branch"] = beyond  # queues, slots, gaps within chains
    parts["joins: stage done to next launched"] = join
    parts["last step done to published record"] = _when(track["finished_at"]) - finished_before
    return parts


def wait_until_quiet(settings: Any, timeout_s: float = 600.0) -> float:
    """Wait until no message is queued, in flight or delayed in any worker queue (the background
    work that follows a publication, such as the catalogue joining the track, is done); returns
    the seconds waited."""
    from trackflow.settings import Lane
    from trackflow.tasks.recovery import lane_idle

    started = time.perf_counter()
    while not all(lane_idle(settings, lane) for lane in Lane):
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError("the worker queues did not drain")
        time.sleep(0.5)
    return time.perf_counter() - started


def _upload(client: Any, path: Path) -> tuple[str, float]:
    """Upload through a presigned POST; returns the track id and when the upload ended."""
    created = client.create_upload(path)
    client.send_file(created["upload"], path)
    return created["track_id"], time.time()


def _follow(
    client: Any, uploads: list[tuple[str, float]], poll_s: float
) -> list[tuple[dict, float]]:
    """Each uploaded track's final record and seconds from the end of its upload to publication.

    The tracks are followed through their owner's listing, a request a poll however many they
    are: a GET per track every poll was a load on the API and the emulator (a CPU second in a
    6-track batch) that a client following many uploads need not make. The times come from the
    records, not from the polling, so a slow poll loses nothing."""
    from trackflow.domain.track import TERMINAL

    finished: dict[str, dict] = {}
    while True:
        for track in _own_tracks(client):
            if track["status"] in TERMINAL:
                finished[track["track_id"]] = track
        if all(track_id in finished for track_id, _ in uploads):
            break
        time.sleep(poll_s)
    return [
        (
            finished[track_id] | {"bench_uploaded_at": at},
            _when(finished[track_id]["finished_at"]) - at,
        )
        for track_id, at in uploads
    ]


def _own_tracks(client: Any) -> Iterator[dict]:
    cursor: str | None = None
    while True:
        after = {"cursor": cursor} if cursor else {}
        page = client.request("GET", "/v1/tracks", params={"limit": 100, **after})
        yield from page["tracks"]
        if not (cursor := page.get("next_cursor")):
            return


class SystemRun(NamedTuple):
    wall_s: float  # the batch: upload to last published
    batch: list[tuple[dict, float]]  # each track's record and upload-to-published seconds
    probe: tuple[dict, float]  # the probe track alone on the idle stack
    cpu: dict[str, float]  # each role's CPU seconds from the batch's upload until its
    # background work was done too
    followed_s: float  # how long that was
    background_s: float  # how long the background work went on after the last publication
    steal: float  # the share of the cores the hypervisor gave to others meanwhile
    emulator: dict[tuple[str, str], tuple[float, int]]  # its CPU seconds and requests in that
    # time, by caller and operation (empty when the emulator is not ours)


def system(tracks: list[Path], probe: Path, warm_up: Path, cores: int) -> SystemRun:
    """The batch, and the probe before it.

    Each phase starts on a quiet stack: the work that follows a publication (the catalogue
    joining the track) of one phase is not charged to the next."""
    from trackflow_devstack.stack import Stack

    from trackflow.auth import mint_token
    from trackflow.cli.client import ApiClient
    from trackflow.settings import get_settings

    settings = get_settings()
    stack = Stack(settings, cores=cores)
    stack.start(on_event=lambda message: print(f"  {message}", file=sys.stderr))
    try:
        client = ApiClient(settings.api_url, mint_token(settings, "bench"))
        roles = {r.name: psutil.Process(r.process.pid) for r in stack.roles if r.process}
        # A stack that just started runs each pool process's first step late (lazy imports
        # and set-up); an idle stack in service is past that.
        print("  a warm-up track, then the probe track alone on the idle stack", file=sys.stderr)
        _follow(client, [_upload(client, warm_up)], poll_s=1.0)
        wait_until_quiet(settings)
        [alone] = _follow(client, [_upload(client, probe)], poll_s=1.0)
        wait_until_quiet(settings)
        print(f"  the batch: {len(tracks)} tracks at once", file=sys.stderr)
        emulator_before = _emulator_cpu(stack)
        cpu_before = {role: _cpu_seconds(p) for role, p in roles.items()}
        clock = cpu_clock()
        started, started_at = time.perf_counter(), time.time()
        with ThreadPoolExecutor(len(tracks)) as uploads:
            uploaded = list(uploads.map(lambda path: _upload(client, path), tracks))
        batch = _follow(client, uploaded, poll_s=5.0)
        wait_until_quiet(settings)
        followed = time.perf_counter() - started
        wall = max(_when(track["finished_at"]) for track, _ in batch) - started_at
        cpu = {role: _cpu_seconds(p) - cpu_before[role] for role, p in roles.items()}
        stolen = steal_share(clock, cpu_clock())
        emulator = _emulator_cpu(stack)
        for key, (seconds, requests) in emulator_before.items():
            emulator[key] = (emulator[key][0] - seconds, emulator[key][1] - requests)
        background = time.time() - started_at - wall
        return SystemRun(wall, batch, alone, cpu, followed, background, stolen, emulator)
    finally:
        stack.stop()


def _emulator_cpu(stack: Any) -> dict[tuple[str, str], tuple[float, int]]:
    from trackflow_devstack.emulator import cpu_by_caller

    if not stack.embedded:
        return {}
    return {
        (row["caller"], row["operation"]): (row["cpu_s"], row["requests"])
        for row in cpu_by_caller(stack.settings.endpoint_url)
    }


def emulator_by_caller(
    rows: dict[tuple[str, str], tuple[float, int]],
) -> list[tuple[str, float, str, float, int]]:
    """Per caller, most first: its CPU seconds in the emulator, and its costliest operation's
    name, CPU seconds and requests."""
    callers: dict[str, list[tuple[float, int, str]]] = {}
    for (caller, operation), (seconds, requests) in rows.items():
        callers.setdefault(caller.removeprefix("trackflow-"), []).append(
            (seconds, requests, operation)
        )
    summary = []
    for caller, operations in callers.items():
        seconds, requests, operation = max(operations)
        summary.append((caller, sum(o[0] for o in operations), operation, seconds, requests))
    return sorted(summary, key=lambda row: -row[1])


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--probe-minutes", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5, help="system runs, each between bare ones")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="trackflow-bench-"))
    status = 1
    try:
        status = run(args, scratch)
    finally:
        if status == 0:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"the stack's logs are kept in {scratch / 'data' / 'logs'}", file=sys.stderr)
    return status


def run(args: argparse.Namespace, scratch: Path) -> int:
    cores = os.cpu_count() or 2
    use_own_stack(scratch)
    print(f"generating {args.tracks} tracks of {args.minutes:g} minutes…", file=sys.stderr)
    tracks = [
        make_inputs(scratch / f"t{n}", args.minutes, seed=500 + n)[0] for n in range(args.tracks)
    ]
    probe = make_inputs(scratch / "probe", args.probe_minutes, seed=999)[0]
    warm_up = make_inputs(scratch / "warm-up", 0.25, seed=998)[0]

    print(f"bare: {args.tracks} tracks in a pool of {cores} processes…", file=sys.stderr)
    bares = [bare(tracks, cores)]
    systems = []
    for n in range(args.rounds):
        print(f"the system, round {n + 1} of {args.rounds}: trackflow up…", file=sys.stderr)
        systems.append(system(tracks, probe, warm_up, cores))
        print("bare again…", file=sys.stderr)
        bares.append(bare(tracks, cores))
    rounds = [
        (measured.wall_s / statistics.mean((bares[n].wall_s, bares[n + 1].wall_s)), n)
        for n, measured in enumerate(systems)
    ]
    ratio, middle = statistics.median_low(rounds)
    before, measured, after = bares[middle], systems[middle], bares[middle + 1]
    wall, batch, cpu = measured.wall_s, measured.batch, measured.cpu
    followed, background = measured.followed_s, measured.background_s
    alone, alone_latency = measured.probe
    bare_wall = statistics.mean((before.wall_s, after.wall_s))
    bare_cpu = statistics.mean((before.cpu_s, after.cpu_s))
    bare_steps = before.steps + after.steps
    # each role's share of the cores while the batch was followed: where the time went
    shares = {kind: seconds / (followed * cores) for kind, seconds in cpu.items()}

    failed = [
        t["track_id"]
        for run in systems
        for t, _ in [*run.batch, run.probe]
        if t["status"] != "published"
    ]
    if failed:
        print(f"not published: {failed}", file=sys.stderr)
        return 1
    latencies = [latency for _, latency in batch]
    path = critical_path(alone)
    in_steps = sum(float(s.get("duration_s", 0)) for s in alone["steps"].values())
    print(f"\n{args.tracks} tracks × {args.minutes:g} min on {cores} cores\n")
    print(f"{'':<38}{'seconds':>10}")
    print(
        f"{'bare media work (pool of ' + str(cores) + ')':<38}{bare_wall:>10.1f}"
        f"  (before {before.wall_s:.1f}, after {after.wall_s:.1f})"
    )
    print(f"{'whole system, upload to last published':<38}{wall:>10.1f}")
    print(f"{'ratio system / bare':<38}{ratio:>10.2f}  goal <= 1.15: {_met(ratio <= 1.15)}")
    print(
        f"  the median of {len(rounds)} rounds, each against the bare runs either side of it; "
        f"the figures here are round {middle + 1}'s"
    )
    for r, n in rounds:
        print(
            f"{'  round ' + str(n + 1):<38}{r:>10.2f}  system {systems[n].wall_s:.1f} s, bare "
            f"{bares[n].wall_s:.1f} and {bares[n + 1].wall_s:.1f} s; the probe's overhead "
            f"{_probe_overhead(systems[n]):.2f} s"
        )
    print(f"{'latency p50 (upload to published)':<38}{_percentile(latencies, 50):>10.1f}")
    print(f"{'latency p95':<38}{_percentile(latencies, 95):>10.1f}")
    print(f"{'background work after the last publish':<38}{background:>10.1f}  (catalogue joins)")
    print(
        f"{'cores stolen by the hypervisor':<38}{measured.steal:>10.1%}"
        f"  (bare before {before.steal:.1%}, after {after.steal:.1%})"
    )
    print(
        "\nCPU from the batch's upload until its background work was done too "
        f"({followed:.0f} s on {cores} cores)\n"
    )
    worker_cpu = sum(seconds for role, seconds in cpu.items() if role.startswith("worker"))
    others = {role: share for role, share in shares.items() if not role.startswith("worker")}
    for role, share in sorted(
        {**others, "workers": worker_cpu / (followed * cores)}.items(), key=lambda item: -item[1]
    ):
        print(f"{'CPU share: ' + role:<38}{share:>10.0%}")
        if role == "workers":
            for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
                if name.startswith("worker"):
                    print(f"{'  ' + name + ' (CPU seconds)':<38}{seconds:>10.1f}")
        if role == "emulator" and measured.emulator:
            for caller, seconds, operation, op_s, requests in emulator_by_caller(measured.emulator):
                print(
                    f"{'  asked by ' + caller:<38}{seconds:>10.1f}"
                    f"  most in {operation}: {op_s:.1f} s, {requests} requests"
                )
            answered = sum(seconds for seconds, _ in measured.emulator.values())
            print(
                f"{'  its HTTP server, by no caller':<38}{cpu[role] - answered:>10.1f}"
                "  (reading requests, writing answers, a thread per connection)"
            )
    # what stays on the worker hosts on AWS, where the emulator's share is AWS's
    print(f"{'CPU seconds, bare media work':<38}{bare_cpu:>10.1f}")
    print(f"{'CPU seconds, workers':<38}{worker_cpu:>10.1f}  ratio {worker_cpu / bare_cpu:.2f}")
    all_cpu = sum(cpu.values())
    print(f"{'CPU seconds, all of the stack':<38}{all_cpu:>10.1f}  ratio {all_cpu / bare_cpu:.2f}")
    per_track_overhead = statistics.mean(latency - critical_path(track) for track, latency in batch)
    print(f"{'mean latency beyond critical path':<38}{per_track_overhead:>10.1f}  (queueing too)")

    print(f"\none {args.probe_minutes:g}-minute track on the idle stack\n")
    print(f"{'critical path (longest chain of steps)':<38}{path:>10.2f}")
    print(f"{'upload to published':<38}{alone_latency:>10.2f}")
    print(
        f"{'ratio':<38}{alone_latency / path:>10.2f}  goal <= 1.3: "
        f"{_met(alone_latency <= 1.3 * path)}"
    )
    overhead = _probe_overhead(measured)
    print(f"{'orchestration overhead':<38}{overhead:>10.2f}  goal < 0.5: {_met(overhead < 0.5)}")
    print(f"{'sum of all step times (2 cores)':<38}{in_steps:>10.2f}")
    parts = overhead_parts(alone, alone["bench_uploaded_at"])
    for part, seconds in parts.items():
        print(f"{'  ' + part:<38}{seconds:>10.2f}")

    print(
        "\nper step, mean seconds per track in the batch (system steps include S3 and state"
        " I/O; waited: ready to started, in a queue or for a free slot; the idle probe's"
        " own wait beside it; CPU: the step's process and its ffmpeg)\n"
    )
    print(
        f"{'step':<18}{'bare':>9}{'system':>9}{'ratio':>8}{'waited':>9}{'probe':>8}"
        f"{'CPU bare':>10}{'system':>8}{'ratio':>7}"
    )
    names = list(alone["steps"])
    waits = [queue_waits(t) for t, _ in batch]
    probe_waits = queue_waits(alone)
    summary = {}
    for name in names:
        sys_mean, sys_cpu = (
            statistics.mean(float(t["steps"][name].get(field, 0)) for t, _ in batch)
            for field in ("duration_s", "cpu_s")
        )
        bare_mean, bare_step_cpu = (
            statistics.mean(s.get(name, (0.0, 0.0))[i] for s in bare_steps) for i in (0, 1)
        )
        waited = statistics.mean(w.get(name, 0.0) for w in waits)
        summary[name] = {
            "bare_s": round(bare_mean, 3),
            "system_s": round(sys_mean, 3),
            "waited_s": round(waited, 3),
            "probe_waited_s": round(probe_waits.get(name, 0.0), 3),
            "bare_cpu_s": round(bare_step_cpu, 3),
            "system_cpu_s": round(sys_cpu, 3),
        }
        print(
            f"{name:<18}{bare_mean:>9.2f}{sys_mean:>9.2f}{_ratio(sys_mean, bare_mean):>8}"
            f"{waited:>9.2f}{probe_waits.get(name, 0.0):>8.2f}"
            f"{bare_step_cpu:>10.2f}{sys_cpu:>8.2f}{_ratio(sys_cpu, bare_step_cpu):>7}"
        )

    out = Path(".trackflow") / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e.json").write_text(
        json.dumps(
            {
                "tracks": args.tracks,
                "minutes": args.minutes,
                "cores": cores,
                "bare_wall_s": round(bare_wall, 2),
                "bare_wall_before_after_s": [round(before.wall_s, 2), round(after.wall_s, 2)],
                "steal_share": {
                    "bare_before": round(before.steal, 3),
                    "system": round(measured.steal, 3),
                    "bare_after": round(after.steal, 3),
                },
                "system_wall_s": round(wall, 2),
                "ratio": round(ratio, 3),
                "rounds": [
                    {
                        "ratio": round(r, 3),
                        "system_wall_s": round(systems[n].wall_s, 2),
                        "bare_wall_before_after_s": [
                            round(bares[n].wall_s, 2),
                            round(bares[n + 1].wall_s, 2),
                        ],
                        "probe_overhead_s": round(_probe_overhead(systems[n]), 2),
                    }
                    for r, n in rounds
                ],
                "latency_p50_s": round(_percentile(latencies, 50), 2),
                "latency_p95_s": round(_percentile(latencies, 95), 2),
                "cpu_shares": {role: round(share, 3) for role, share in shares.items()},
                "emulator_cpu_s": [
                    {"caller": c, "operation": o, "cpu_s": round(v, 2), "requests": n}
                    for (c, o), (v, n) in sorted(measured.emulator.items())
                ],
                "background_after_last_publish_s": round(background, 1),
                "bare_cpu_s": round(bare_cpu, 1),
                "worker_cpu_s": round(worker_cpu, 1),
                "stack_cpu_s": round(all_cpu, 1),
                "probe_critical_path_s": round(path, 2),
                "probe_latency_s": round(alone_latency, 2),
                "probe_overhead_s": {part: round(v, 3) for part, v in parts.items()},
                "steps": summary,
            },
            indent=2,
        )
    )
    return 0


def _probe_overhead(run: SystemRun) -> float:
    track, latency = run.probe
    return latency - critical_path(track)


def _ratio(system: float, bare: float) -> str:
    return f"{system / bare:.2f}" if bare >= 0.005 else "-"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    sys.exit(main())
