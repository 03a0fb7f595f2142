"""The production roles never load the local stack: no moto, Flask or werkzeug's server."""

from __future__ import annotations

import json
import subprocess
import sys

DEV_ONLY = ("moto", "flask", "werkzeug.serving", "trackflow_devstack")

ROLES = (
    "trackflow.tasks.steps",
    "trackflow.tasks.app",
    "trackflow.api.app",
    "trackflow.consumer.service",
    "trackflow.cli.main",
    "trackflow.operations.bootstrap",
)


def test_production_roles_import_nothing_of_the_local_stack() -> None:
    """Importing every production role (the CLI that starts them included) loads no dev-only
    module, even where the local stack is installed beside it."""
    script = (
        "import importlib, json, sys\n"
        f"for role in {ROLES!r}: importlib.import_module(role)\n"
        f"print(json.dumps(sorted(m for m in {DEV_ONLY!r} if m in sys.modules)))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(answer.stdout) == []
