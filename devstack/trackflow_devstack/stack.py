"""The local stack that `trackflow up` runs: emulator, API, consumer and workers, each a child
process, started in order, watched, and stopped cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trackflow.domain.track import STAGES, STEP_BY_NAME
from trackflow.settings import AwsTarget, Lane, Settings, WorkerGroup
from trackflow_devstack.emulator import port_in_use, wait_until_serving

__all__ = ["Role", "Stack", "StackBusy", "worker_roles"]


class StackBusy(RuntimeError):
    """Another `trackflow up` holds the stack, or a port is taken."""


@dataclass
class Role:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _module(*args: str) -> list[str]:
    return [sys.executable, "-m", "trackflow.cli", *args]


# The most I/O steps one stage starts at once (publication's three).
IO_FAN_OUT = max(
    sum(STEP_BY_NAME[step].group is WorkerGroup.IO for step in stage.steps) for stage in STAGES
)


def worker_roles(cores: int | None = None) -> list[Role]:
    """Workers for this machine: a CPU slot for every core and one more, an I/O slot for each
    I/O step a stage starts at once (with fewer, the uploader's email waited for the search
    index or the feeds to finish), a small priority lane of each so that
    priority uploads never wait behind the backlog, and one slot of each for bulk work (the
    catalogue's) so that it never holds up an upload.

    The extra CPU slot: three of a stage's CPU steps (the checks' three CPU branches, three of
    the four renditions) start together, where on two slots the third waited for the first to
    end; sharing the cores, they end together sooner (`make bench-e2e` measures it). That holds
    on an idle stack only: a step that was queued waits for a free core (tasks/cores.py), so in
    a backlog the extra slot holds the next step, ready the moment a core frees."""
    cores = cores or os.cpu_count() or 2
    plan = [
        (WorkerGroup.CPU, Lane.STANDARD, cores + 1),
        (WorkerGroup.IO, Lane.STANDARD, max(IO_FAN_OUT, cores)),
        (WorkerGroup.CPU, Lane.PRIORITY, 1),
        (WorkerGroup.IO, Lane.PRIORITY, 1),
        (WorkerGroup.CPU, Lane.BULK, 1),
        (WorkerGroup.IO, Lane.BULK, 1),
    ]
    return [
        Role(
            f"worker-{group}-{lane}",
            _module("worker", "--group", str(group), "--lane", str(lane), "--concurrency", str(n)),
        )
        for group, lane, n in plan
    ]


class Stack:
    def __init__(self, settings: Settings, *, cores: int | None = None) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self.log_dir = self.data_dir / "logs"
        self.embedded = settings.aws_target is AwsTarget.EMBEDDED and not settings.aws_endpoint_url
        self.roles: list[Role] = []
        if self.embedded:
            self.roles.append(Role("emulator", _module("emulator")))
        self.services: list[Role] = [
            Role("api", _module("api")),
            Role("consumer", _module("consumer")),
            *worker_roles(cores),
        ]
        self.roles += self.services
        self._lock: IO[str] | None = None

    # --- one stack at a time ------------------------------------------------------------------
    def _acquire(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / "up.lock").open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            try:
                info = json.loads(lock.read() or "{}")
            except ValueError:
                info = {}
            lock.close()
            raise StackBusy(
                f"trackflow is already up (pid {info.get('pid', '?')}, API at "
                f"{info.get('api', self.settings.api_url)}); stop it with Ctrl-C in its terminal "
                f"or `kill {info.get('pid', '<pid>')}`"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(
            json.dumps({"pid": os.getpid(), "api": self.settings.api_url, "started": time.time()})
        )
        lock.flush()
        self._lock = lock
        taken = [
            f"{what} port {host}:{port}"
            for what, host, port, needed in (
                (
                    "emulator",
                    self.settings.emulator_host,
                    self.settings.emulator_port,
                    self.embedded,
                ),
                ("API", self.settings.api_host, self.settings.api_port, True),
            )
            if needed and port_in_use(host, port)
        ]
        if taken:
            self._release()
            raise StackBusy(
                f"something else is listening on the {' and '.join(taken)}; "
                "stop it or choose other ports (TRACKFLOW_EMULATOR_PORT, "
                "TRACKFLOW_API_PORT)"
            )

    def _release(self) -> None:
        if self._lock:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # --- lifecycle ------------------------------------------------------------------------------
    def _spawn(self, role: Role) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        role.log = (self.log_dir / f"{role.name}.log").open("ab")
        role.process = subprocess.Popen(
            role.argv,
            # each process names itself to AWS in its User-Agent (``app/trackflow-api``): the
            # emulator counts its CPU by caller, and on AWS the name reaches CloudTrail
            env={"AWS_SDK_UA_APP_ID": f"trackflow-{role.name}", **os.environ},
            stdin=subprocess.DEVNULL,
            stdout=role.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us alone; we stop the children in order
            preexec_fn=_die_with_parent,
        )

    def start(self, on_event: Any = lambda message: None) -> None:
        self._acquire()
        try:
            if self.embedded:
                self._spawn(self.roles[0])
                wait_until_serving(self.settings.endpoint_url or "", timeout_s=60)
                on_event(f"emulator serving at {self.settings.endpoint_url}")
            if self.settings.aws_target is not AwsTarget.AWS:  # Terraform makes AWS's
                from trackflow.operations.bootstrap import bootstrap

                bootstrap(self.settings)
                on_event("resources ready (buckets, queues, tables, notifications)")
            for role in self.services:
                self._spawn(role)
            self._wait_for_api()
            on_event(f"API at {self.settings.api_url} (docs at {self.settings.api_url}/docs)")
            on_event(
                f"consumer and {len(self.services) - 2} worker groups started;"
                f" logs in {self.log_dir}"
            )
        except BaseException:
            self.stop()
            raise

    def _wait_for_api(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        api = next(r for r in self.roles if r.name == "api")
        while True:
            if api.process and api.process.poll() is not None:
                raise RuntimeError(f"the API exited; see {self.log_dir / 'api.log'}")
            try:
                with urllib.request.urlopen(f"{self.settings.api_url}/healthz", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the API did not come up") from None
                time.sleep(0.2)

    def dead(self) -> list[Role]:
        return [r for r in self.roles if r.process and r.process.poll() is not None]

    def stop(self, grace_s: float = 20) -> None:
        """SIGTERM the children (workers hand back unfinished messages), the emulator last since
        the others talk to it while they stop; SIGKILL whatever outlives the grace period."""
        services = [r for r in self.roles if r.name != "emulator"]
        emulator = [r for r in self.roles if r.name == "emulator"]
        for group in (services, emulator):
            for role in group:
                if role.process and role.process.poll() is None:
                    role.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for role in group:
                if not role.process:
                    continue
                try:
                    role.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(role.process.pid, signal.SIGKILL)
                    role.process.wait()
                if role.log:
                    role.log.close()
        self._release()
