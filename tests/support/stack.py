"""Helpers for tests that drive the running stack like a client app would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trackflow_devstack.emulator import sent_emails

from trackflow.adapters import aws
from trackflow.auth import mint_token
from trackflow.cli.client import ApiClient
from trackflow.domain.keys import PEAKS_ARTIFACT
from trackflow.settings import Settings


def client_for(settings: Settings, user: str) -> ApiClient:
    return ApiClient(settings.api_url, mint_token(settings, user))


def upload(client: ApiClient, path: Path, content_type: str | None = None) -> str:
    created = client.create_upload(path, content_type)
    client.send_file(created["upload"], path)
    return created["track_id"]


def upload_and_wait(client: ApiClient, path: Path, timeout_s: float = 240) -> dict[str, Any]:
    return client.wait(upload(client, path), timeout_s=timeout_s)


def wait_for(check: Callable[[], Any], timeout_s: float = 60, interval_s: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s} s")
        time.sleep(interval_s)


def emails_to(settings: Settings, address: str) -> list[dict[str, Any]]:
    # Straight to the emulator: the tests' fault proxy is for the system, not for its observers.
    return [
        m
        for m in sent_emails(settings.emulator_url)
        if address in m["Destination"].get("ToAddresses", [])
    ]


def object_bytes(settings: Settings, uri: str) -> bytes:
    bucket, key = aws.split_s3_uri(uri)
    response = aws.client("s3", settings).get_object(Bucket=bucket, Key=key)
    return response["Body"].read()


def peaks(settings: Settings, track: dict[str, Any]) -> dict[str, Any]:
    return json.loads(object_bytes(settings, track["outputs"][PEAKS_ARTIFACT]))
