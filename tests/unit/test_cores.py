"""Core leases: at most one step per core holds one, a freed core is taken by a waiting step, and
a lease ends with its holder however the holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from trackflow.tasks.cores import CoreLeases


def test_there_are_as_many_leases_as_cores_and_a_closed_one_is_free_again(tmp_path: Path):
    leases = CoreLeases(tmp_path, 2)
    held = [leases.take(), leases.take()]
    assert None not in held
    assert leases.take() is None
    os.close(held.pop())
    again = leases.take()
    assert again is not None
    for fd in (*held, again):
        os.close(fd)


@pytest.mark.parametrize("frees", [0, 1])
def test_a_waiting_turn_takes_whichever_core_frees_first(tmp_path: Path, frees: int):
    leases = CoreLeases(tmp_path, 2)
    holders = [leases.take(), leases.take()]
    threading.Timer(0.2, os.close, (holders[frees],)).start()
    with leases.turn(wait_s=30) as turn:
        assert turn.leased
        assert 0.15 < turn.waited_s < 5
        assert leases.take() is None  # the turn holds the freed core
    fd = leases.take()
    assert fd is not None  # and gave it back
    for held in (fd, holders[1 - frees]):
        os.close(held)


@pytest.mark.parametrize("wait_s", [0.0, 0.1])
def test_a_turn_that_finds_no_core_in_time_shares_one(tmp_path: Path, wait_s: float):
    leases = CoreLeases(tmp_path, 1)
    holder = leases.take()
    ran = False
    with leases.turn(wait_s=wait_s) as turn:
        ran = True
        assert not turn.leased
        assert turn.waited_s >= wait_s
    assert ran
    assert leases.take() is None  # the holder's lease was never touched
    os.close(holder)


def test_a_killed_holder_frees_its_core(tmp_path: Path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from trackflow.tasks.cores import "
            "CoreLeases; assert CoreLeases(Path(sys.argv[1]), 1).take() is not None; "
            "print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        leases = CoreLeases(tmp_path, 1)
        assert leases.take() is None
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with leases.turn(wait_s=10) as turn:
            assert turn.leased
    finally:
        holder.kill()
        holder.wait()
