"""How a long-running trackflow process treats the machine it runs on: what a step cost in CPU,
how a CPU worker asks the scheduler for its cores, and how a process keeps the garbage
collector off what it set up. Used by the workers and the consumer."""

from __future__ import annotations

import gc
import os
import resource

__all__ = ["cpu_seconds", "freeze_long_lived", "schedule_as_batch"]


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and the children it has waited for (the ffmpeg a
    step ran): the difference across a step is what the step cost the machine, whatever else
    shared the cores meanwhile."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def schedule_as_batch() -> None:
    """Tell the scheduler that this process, and the ffmpeg it starts, is CPU-bound batch work
    (Linux's SCHED_BATCH; elsewhere nothing changes).

    Each ffmpeg runs a pipeline of threads (demux, decode, filter, encode) that wake each other
    frame by frame. Under the default policy a woken thread preempts whatever runs, so media
    processes sharing the cores keep evicting each other's caches; a batch thread waits for the
    running one's turn to end instead (`make bench-e2e` shows the effect; see
    docs/performance.md)."""
    if hasattr(os, "SCHED_BATCH"):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def freeze_long_lived() -> None:
    """Move what this process holds now (modules, service models, clients) out of the garbage
    collector's sight, once a long-running process has set up: it keeps all of it until it
    exits. Each full collection then walks only what came later, and a forked pool process no
    longer writes to every page it shares with its parent. Frozen objects are never reclaimed
    as cyclic garbage: only for setup kept to the end."""
    gc.freeze()
