"""How the catalogue writes postings when DynamoDB refuses a transaction. The emulator enforces no
item size, so DynamoDB's answers are given here by botocore's Stubber."""

from __future__ import annotations

from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from trackflow.adapters.state.catalogue import Catalogue


def _update(value: int, posting: bytes) -> dict[str, Any]:
    return {
        "TableName": "fingerprints",
        "Key": {"hash": {"N": str(value)}},
        "UpdateExpression": "ADD p :p",
        "ExpressionAttributeValues": {":p": {"BS": [posting]}},
    }


@pytest.fixture
def dynamodb() -> Any:
    return boto3.session.Session().client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def _postings(number: int, values: list[int]) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    times = list(range(len(values)))
    packed = [number.to_bytes(4, "big") + t.to_bytes(4, "big") for t in times]
    return np.array(values, dtype=np.int64), np.array(times, dtype=np.uint32), packed


def _add_postings(dynamodb: Any, keys: np.ndarray, times: np.ndarray) -> None:
    Catalogue(dynamodb, "catalogue", "fingerprints", threads=1)._update_postings(
        7, keys, times, "ADD"
    )


def test_a_cancelled_batch_is_written_one_hash_at_a_time_leaving_out_a_full_one(dynamodb: Any):
    keys, times, packed = _postings(7, [11, 12, 13])
    updates = [_update(v, p) for v, p in zip([11, 12, 13], packed, strict=True)]
    with Stubber(dynamodb) as stub:
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            expected_params={"TransactItems": [{"Update": u} for u in updates]},
        )
        stub.add_response("update_item", {}, updates[0])
        stub.add_client_error(
            "update_item",
            service_error_code="ValidationException",
            service_message="Item size has exceeded the maximum allowed size",
            expected_params=updates[1],
        )
        stub.add_response("update_item", {}, updates[2])

        _add_postings(dynamodb, keys, times)

        stub.assert_no_pending_responses()


def test_any_other_refusal_is_raised(dynamodb: Any):
    keys, times, _ = _postings(7, [11])
    with Stubber(dynamodb) as stub:
        stub.add_client_error("transact_write_items", service_error_code="AccessDeniedException")

        with pytest.raises(ClientError, match="AccessDenied"):
            _add_postings(dynamodb, keys, times)


def test_postings_go_a_hundred_hashes_a_transaction(dynamodb: Any):
    keys, times, packed = _postings(7, list(range(250)))
    updates = [_update(v, p) for v, p in zip(range(250), packed, strict=True)]
    with Stubber(dynamodb) as stub:
        for start in (0, 100, 200):
            stub.add_response(
                "transact_write_items",
                {},
                {"TransactItems": [{"Update": u} for u in updates[start : start + 100]]},
            )

        _add_postings(dynamodb, keys, times)

        stub.assert_no_pending_responses()
