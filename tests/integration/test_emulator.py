"""The embedded emulator counts its own CPU by caller, as the bench reports it."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from trackflow.aws import client_kwargs
from trackflow.emulator import cpu_by_caller
from trackflow.settings import Settings

pytestmark = pytest.mark.usefixtures("emulator")


def test_cpu_is_counted_by_the_caller_named_in_the_user_agent(emulator: str, settings: Settings):
    kwargs = client_kwargs(settings)
    kwargs["config"] = kwargs["config"].merge(Config(user_agent_appid="trackflow-test-caller"))
    dynamodb = boto3.session.Session().client("dynamodb", **kwargs)
    for _ in range(3):
        dynamodb.list_tables()

    rows = {(r["caller"], r["operation"]): r for r in cpu_by_caller(emulator)}

    row = rows[("trackflow-test-caller", "DynamoDB ListTables")]
    assert row["requests"] == 3 and row["cpu_s"] > 0
