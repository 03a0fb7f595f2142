"""Test configuration: an isolated environment for every run, the emulator and the whole stack.

Settings are read from the environment once per process, so the environment is fixed here,
before anything imports trackflow: a data directory of its own, free ports, the embedded
emulator (served in this process) and time limits that suit short test tracks. The stack's
child processes (API, consumer, workers) inherit all of it.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_DATA_DIR = Path(tempfile.mkdtemp(prefix="trackflow-test-"))
_EMULATOR_PORT = _free_port()
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
        # the emulator runs in the test process; the stack's children talk to it here
        "TRACKFLOW_AWS_ENDPOINT_URL": f"http://127.0.0.1:{_EMULATOR_PORT}",
        "TRACKFLOW_API_PORT": str(_free_port()),
        "TRACKFLOW_DATA_DIR": str(_DATA_DIR),
        "TRACKFLOW_CPU_TASK_TIME_LIMIT_S": "240",
        "TRACKFLOW_IO_TASK_TIME_LIMIT_S": "120",
        "TRACKFLOW_BROKER_WAIT_TIME_S": "5",
        "TRACKFLOW_LOG_LEVEL": "INFO",
    }
)

from trackflow.settings import Settings, get_settings  # noqa: E402


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def emulator(settings: Settings) -> Iterator[str]:
    """The embedded emulator with every resource bootstrapped."""
    from trackflow.bootstrap import bootstrap
    from trackflow.emulator import EmulatorServer

    server = EmulatorServer(settings.emulator_host, settings.emulator_port).start()
    bootstrap(settings)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def stack(emulator: str, settings: Settings) -> Iterator[object]:
    """The API, the consumer and real Celery workers, as `trackflow up` runs them."""
    from trackflow.cli.stack import Stack

    running = Stack(settings)
    running.start()
    yield running
    died = [r.name for r in running.dead()]
    running.stop()
    assert not died, f"stack processes died while the tests ran: {died}; logs in {running.log_dir}"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
