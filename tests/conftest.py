"""Test configuration: an isolated environment for every run, the emulator and the whole stack.

Settings are read from the environment once per process, so the environment is fixed here,
before anything imports trackflow: a data directory of its own, free ports, the embedded
emulator (served in this process) and time limits that suit short test tracks. The stack's
child processes (API, consumer, workers) inherit all of it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_DATA_DIR = Path(tempfile.mkdtemp(prefix="trackflow-test-"))
_EMULATOR_PORT = _free_port()
_PROXY_PORT = _free_port()
for leaked in (
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "BROKER_URL",
    "RESULT_BACKEND",
):
    os.environ.pop(leaked, None)
os.environ.update(
    {
        "TRACKFLOW_ENV": "test",
        "TRACKFLOW_AWS_TARGET": "embedded",
        "TRACKFLOW_EMULATOR_PORT": str(_EMULATOR_PORT),
        # The emulator runs in the test process; everything reaches it through a proxy that
        # forwards faithfully until a chaos test tells it to inject faults.
        "TRACKFLOW_AWS_ENDPOINT_URL": f"http://127.0.0.1:{_PROXY_PORT}",
        "TRACKFLOW_API_PORT": str(_free_port()),
        "TRACKFLOW_DATA_DIR": str(_DATA_DIR),
        "TRACKFLOW_CPU_TASK_TIME_LIMIT_S": "240",
        "TRACKFLOW_IO_TASK_TIME_LIMIT_S": "120",
        "TRACKFLOW_BROKER_WAIT_TIME_S": "5",
        # a stalled track is resumed within the tests' patience (its steps take seconds)
        "TRACKFLOW_STALLED_AFTER_S": "30",
        "TRACKFLOW_STUCK_AFTER_S": "300",
        "TRACKFLOW_SWEEP_INTERVAL_S": "15",
        "TRACKFLOW_EMAIL_RATE_PER_S": "40",
        "TRACKFLOW_LOG_LEVEL": "INFO",
    }
)

from trackflow.settings import Settings, get_settings  # noqa: E402


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def emulator(settings: Settings) -> Iterator[str]:
    """The embedded emulator, behind the fault proxy, with every resource bootstrapped."""
    from trackflow_devstack.emulator import EmulatorServer, wait_until_serving

    from trackflow.operations.bootstrap import bootstrap

    server = EmulatorServer(settings.emulator_host, settings.emulator_port).start()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tests.support.faultproxy", str(_PROXY_PORT), server.url],
        cwd=Path(__file__).parent.parent,
    )
    try:
        wait_until_serving(settings.endpoint_url or "")
        bootstrap(settings)
        yield server.url
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        server.stop()


@pytest.fixture
def faults(emulator: str, settings: Settings) -> Iterator[Callable[..., dict]]:
    """Turn on faults in the proxy (probabilities of drop, delay, 500, 503, throttle); they are
    turned off again after the test. Returns what the proxy injected so far."""

    def inject(**probabilities: float) -> dict:
        request = urllib.request.Request(
            f"{settings.endpoint_url}/__faults__",
            data=json.dumps(probabilities).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    yield inject
    inject()


@pytest.fixture(scope="session")
def stack(emulator: str, settings: Settings) -> Iterator[object]:
    """The API, the consumer and real Celery workers, as `trackflow up` runs them."""
    from trackflow_devstack.stack import Stack

    running = Stack(settings)
    running.start()
    yield running
    died = [r.name for r in running.dead()]
    running.stop()
    assert not died, f"stack processes died while the tests ran: {died}; logs in {running.log_dir}"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
