"""Unit tests run without AWS: the workflow shell's webhook hook (tasks/webhooks.py, which asks
DynamoDB who listens) is replaced by a recorder wherever the shell was imported."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_webhook_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """Record the webhook events the shell would emit instead of reaching DynamoDB."""
    emitted: list[tuple[str, Any]] = []
    module = sys.modules.get("trackflow.tasks.webhooks")
    if module is not None:
        monkeypatch.setattr(
            module, "emit", lambda track, types: emitted.extend(("event", t) for t in types)
        )
        monkeypatch.setattr(
            module,
            "emit_progress",
            lambda track, stage, state: emitted.append(("progress", f"{stage}:{state}")),
        )
    yield emitted
