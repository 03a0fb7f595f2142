"""Turns at the host's cores for CPU steps: no more media work at once than there are cores.

A CPU worker keeps one process more than the host has cores, so that the three steps a stage
starts at once start together on an idle stack rather than the third waiting for the first to
end. In a backlog that third process would put three media steps on two cores for the whole
batch, and media work sharing a core costs more CPU than alone (`make bench-e2e` shows it;
docs/performance.md). So a step takes a lease on a core first, and one that finds every core
leased waits for one, unless it was not queued at all: a worker process was free the moment it
became ready, as on an idle stack or at the end of a backlog.

A lease is an exclusive ``flock`` on one of ``count`` files: the kernel frees it when its holder
ends, however it ends (even killed at its hard time limit), so no lease outlives its step.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CoreLeases", "Turn"]


@dataclass(frozen=True, slots=True)
class Turn:
    """How a step came to run: on a leased core or sharing one, after waiting how long."""

    leased: bool
    waited_s: float


class CoreLeases:
    """``count`` leases, one per core of this host, shared by every process that names the same
    ``directory``."""

    def __init__(self, directory: Path, count: int) -> None:
        if count < 1:
            raise ValueError("a host has at least one core")
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = [directory / f"core-{n}.lease" for n in range(count)]

    def take(self) -> int | None:
        """A free lease (its file descriptor; closing it frees the lease), or None if all are
        held."""
        for path in self.paths:
            fd = _open(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            return fd
        return None

    @contextmanager
    def turn(self, *, wait_s: float) -> Iterator[Turn]:
        """Hold a core for the block, waiting up to ``wait_s`` for one to free; past that the
        block runs anyway, sharing a core, so that a step stuck holding one delays the others
        rather than failing them."""
        began = time.monotonic()
        claim = _Claim(self.take())
        try:
            if claim.fd is None and wait_s > 0:
                # one thread blocked on each lease: the first freed is taken at once, and
                # nothing wakes meanwhile, as polling the leases would
                for path in self.paths:
                    threading.Thread(target=claim.wait_for, args=(path,), daemon=True).start()
                claim.won.wait(wait_s)
            claim.close()
            yield Turn(leased=claim.fd is not None, waited_s=time.monotonic() - began)
        finally:
            claim.close()
            if claim.fd is not None:
                os.close(claim.fd)


class _Claim:
    """One waiting step's claim on the first lease to free: later ones are let go at once."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.won = threading.Event()
        self._lock = threading.Lock()
        self._open = fd is None

    def wait_for(self, path: Path) -> None:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # until its holder ends
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            if self._open:
                self.fd, self._open = fd, False
                self.won.set()
                return
        os.close(fd)

    def close(self) -> None:
        """Take no lease from now on (one taken before stays the claim's)."""
        with self._lock:
            self._open = False


def _open(path: Path) -> int:
    # Opened for each take: a lock belongs to an open file, and one opened before a fork would be
    # shared by the pool processes forked from it.
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
