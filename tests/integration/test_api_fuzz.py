"""The API fuzzed from its own OpenAPI schema: no 5xx, and every answer as the schema says."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis

from trackflow.api.app import create_app
from trackflow.auth import mint_token
from trackflow.settings import Settings, get_settings

pytestmark = pytest.mark.usefixtures("emulator")


# the app is built at collection; it reaches the emulator only when called
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(get_settings()))


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI stays reproducible
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_the_api_keeps_to_its_schema(case: schemathesis.Case, settings: Settings):
    # a case that brings its own (perhaps malformed) credentials keeps them
    token = {"Authorization": f"Bearer {mint_token(settings, 'fuzzer')}"}
    case.call_and_validate(
        headers={} if "Authorization" in (case.headers or {}) else token,
        # Some schema-valid requests are refused for what a schema cannot say (a file over
        # the size limit, a cursor that decodes to nothing): 400 with a documented error code.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
