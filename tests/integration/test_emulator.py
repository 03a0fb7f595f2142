"""The embedded emulator's own parts: its CPU counted by caller, as the bench reports it, and its
connections kept from one request to the next."""

from __future__ import annotations

import email.utils
import http.client
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from trackflow_devstack.emulator import _KeepAliveHandler, _tables_named, cpu_by_caller

from trackflow.adapters.aws import client_kwargs
from trackflow.settings import Settings

pytestmark = pytest.mark.usefixtures("emulator")


def test_cpu_is_counted_by_the_caller_named_in_the_user_agent(
    emulator: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_SDK_UA_APP_ID", "trackflow-test-caller")  # as the stack names each
    dynamodb = boto3.session.Session().client("dynamodb", **client_kwargs(settings))
    for _ in range(3):
        dynamodb.list_tables()

    rows = {(r["caller"], r["operation"]): r for r in cpu_by_caller(emulator)}

    row = rows[("trackflow-test-caller", "DynamoDB ListTables")]
    assert row["requests"] == 3 and row["cpu_s"] > 0


def _connect(emulator: str) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(urlsplit(emulator).netloc, timeout=10)


def test_dynamodb_errors_are_answered_as_dynamodb_answers_them(settings: Settings):
    dynamodb = boto3.session.Session().client("dynamodb", **client_kwargs(settings))
    table = settings.table("tracks")
    key = {"track_id": {"S": "no-such-track"}}

    with pytest.raises(ClientError) as missing_table:
        dynamodb.get_item(TableName="no-such-table", Key=key)
    with pytest.raises(ClientError) as failed_condition:
        dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET a = :a",
            ConditionExpression="attribute_exists(track_id)",
            ExpressionAttributeValues={":a": {"S": "x"}},
        )

    assert missing_table.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert failed_condition.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert failed_condition.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Item" not in dynamodb.get_item(TableName=table, Key=key)


def test_one_update_expression_applies_each_request_its_own_values(settings: Settings):
    dynamodb = boto3.session.Session().client("dynamodb", **client_kwargs(settings))
    table = settings.table("tracks")
    keys = [{"track_id": {"S": f"expression-{n}"}} for n in range(3)]
    for n, key in enumerate(keys):  # the same expression thrice: the emulator parses it once
        dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET a = :a ADD s :s",
            ExpressionAttributeValues={":a": {"N": str(n)}, ":s": {"SS": [f"x{n}"]}},
        )

    items = [dynamodb.get_item(TableName=table, Key=key)["Item"] for key in keys]
    for key in keys:
        dynamodb.delete_item(TableName=table, Key=key)
    assert [(i["a"]["N"], i["s"]["SS"]) for i in items] == [
        ("0", ["x0"]),
        ("1", ["x1"]),
        ("2", ["x2"]),
    ]


def test_a_cancelled_transaction_leaves_every_item_as_it_was(settings: Settings):
    """The emulator backs up only the items a transaction names (not whole tables, as moto does):
    a cancelled one still changes nothing, in a table with a sort key as in one without."""
    dynamodb = boto3.session.Session().client("dynamodb", **client_kwargs(settings))
    tracks, feeds = settings.table("tracks"), settings.table("feeds")
    kept = {"track_id": {"S": "transaction-kept"}}
    new = {"track_id": {"S": "transaction-new"}}
    entry = {"user_id": {"S": "transaction-fan"}, "entry": {"S": "e1"}}
    dynamodb.put_item(TableName=tracks, Item={**kept, "n": {"N": "1"}})
    dynamodb.put_item(TableName=feeds, Item={**entry, "n": {"N": "1"}})

    def add(table: str, key: dict, condition: str | None = None) -> dict:
        update = {
            "TableName": table,
            "Key": key,
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
        return {"Update": {**update, "ConditionExpression": condition} if condition else update}

    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                add(tracks, kept),
                add(tracks, new),
                add(feeds, entry),
                add(feeds, {**entry, "entry": {"S": "e2"}}, "attribute_exists(user_id)"),
            ]
        )
    after_cancel = [
        dynamodb.get_item(TableName=t, Key=k).get("Item", {}).get("n", {}).get("N")
        for t, k in ((tracks, kept), (tracks, new), (feeds, entry))
    ]
    dynamodb.transact_write_items(TransactItems=[add(tracks, kept), add(feeds, entry)])
    after_commit = [
        dynamodb.get_item(TableName=t, Key=k)["Item"]["n"]["N"]
        for t, k in ((tracks, kept), (feeds, entry))
    ]
    for table, key in ((tracks, kept), (tracks, new), (feeds, entry)):
        dynamodb.delete_item(TableName=table, Key=key)

    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert after_cancel == ["1", None, "1"]
    assert after_commit == ["2", "2"]


def test_a_request_waits_only_for_requests_on_its_own_tables(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """A transaction on the feeds table, held inside the emulator, keeps no track write waiting."""
    from moto.dynamodb.models import DynamoDBBackend

    dynamodb = boto3.session.Session().client("dynamodb", **client_kwargs(settings))
    entered, release = threading.Event(), threading.Event()
    transact = DynamoDBBackend.transact_write_items

    def held(self: Any, transact_items: list[dict[str, Any]]) -> None:
        entered.set()
        release.wait(30)
        transact(self, transact_items)

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", held)
    entry = {"user_id": {"S": "held-fan"}, "entry": {"S": "e1"}}
    track = {"track_id": {"S": "beside-the-held-transaction"}}
    with ThreadPoolExecutor(2) as pool:
        in_feeds = pool.submit(
            dynamodb.transact_write_items,
            TransactItems=[{"Put": {"TableName": settings.table("feeds"), "Item": entry}}],
        )
        assert entered.wait(10)
        in_tracks = pool.submit(dynamodb.put_item, TableName=settings.table("tracks"), Item=track)
        try:
            in_tracks.result(timeout=10)
            written_while_held = not in_feeds.done()
        finally:
            release.set()
        in_feeds.result(timeout=10)
    dynamodb.delete_item(TableName=settings.table("tracks"), Key=track)
    dynamodb.delete_item(TableName=settings.table("feeds"), Key=entry)

    assert written_while_held


@pytest.mark.parametrize(
    ("request_body", "tables"),
    [
        ({"TableName": "tracks", "Key": {}}, ["tracks"]),
        ({"RequestItems": {"b": {"Keys": []}, "a": {"Keys": []}}}, ["a", "b"]),
        (
            {
                "TransactItems": [
                    {"Update": {"TableName": "prints"}},
                    {"Put": {"TableName": "arn:aws:dynamodb:eu-west-1:1:table/works"}},
                    {"ConditionCheck": {"TableName": "prints"}},
                ]
            },
            ["prints", "works"],
        ),
        ({}, None),  # ListTables
        ({"Statement": "SELECT * FROM tracks"}, None),
        ({"TransactItems": "not a list"}, None),
    ],
)
def test_the_tables_a_dynamodb_request_names(request_body: dict, tables: list[str] | None):
    assert _tables_named(json.dumps(request_body).encode()) == tables
    assert _tables_named(b"{not json") is None


def _answers_on_one_connection(emulator: str, requests: int) -> list[tuple[Any, socket.socket]]:
    """Each answer to ``requests`` GETs sent on one connection, with the socket that carried it."""
    connection = _connect(emulator)
    answers = []
    for _ in range(requests):
        connection.request("GET", "/moto-api/")
        response = connection.getresponse()
        response.read()
        answers.append((response, connection.sock))
    return answers


def test_a_connection_is_kept_for_the_next_request(emulator: str):
    answers = _answers_on_one_connection(emulator, 3)

    assert [response.status for response, _ in answers] == [200] * 3
    assert {response.getheader("Connection") for response, _ in answers} == {None}
    assert len({id(sock) for _, sock in answers}) == 1  # one socket served all three


def test_answers_are_dated_now(emulator: str):
    dates = [
        email.utils.parsedate_to_datetime(response.getheader("Date"))
        for response, _ in _answers_on_one_connection(emulator, 2)
    ]

    assert all(abs((date - datetime.now(UTC)).total_seconds()) < 5 for date in dates)


def test_a_body_left_unread_does_not_spill_into_the_next_request(emulator: str):
    connection = _connect(emulator)
    # moto answers this GET without reading its body; the body must not be parsed as a request
    connection.request("GET", "/moto-api/", body=b"GET /not-a-request HTTP/1.1\r\n\r\n" * 100)
    first = connection.getresponse()
    first.read()
    kept = connection.sock
    connection.request("GET", "/moto-api/")
    second = connection.getresponse()

    assert (first.status, second.status) == (200, 200)
    assert connection.sock is kept
    assert b"moto" in second.read().lower()


def test_a_chunked_request_closes_its_connection(emulator: str):
    connection = _connect(emulator)
    connection.request("GET", "/moto-api/", body=iter([b"abc"]), encode_chunked=True)
    response = connection.getresponse()
    response.read()

    assert response.getheader("Connection") == "close"


def test_a_client_carries_on_after_the_emulator_closes_its_idle_connection(
    emulator: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(_KeepAliveHandler, "timeout", 0.2)  # for connections opened from now on
    kwargs = client_kwargs(settings)
    kwargs.update(endpoint_url=emulator, config=Config(retries={"max_attempts": 1}))
    dynamodb = boto3.session.Session().client("dynamodb", **kwargs)
    dynamodb.list_tables()
    connection = _connect(emulator)
    connection.request("GET", "/moto-api/")
    connection.getresponse().read()

    time.sleep(0.5)  # past the idle timeout: the emulator has closed both connections

    assert connection.sock.recv(1) == b""  # closed by the emulator
    assert "TableNames" in dynamodb.list_tables()  # on a new connection, with no retry


def test_a_malformed_request_on_a_kept_connection_is_answered_and_closes_it(emulator: str):
    host, port = urlsplit(emulator).netloc.split(":")
    too_many_headers = b"".join(b"X-Filler-%d: x\r\n" % n for n in range(101))
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"GET /moto-api/ HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.sendall(b"GET /moto-api/ HTTP/1.1\r\nHost: x\r\n" + too_many_headers + b"\r\n")
        answers = b""
        while chunk := raw.recv(65536):  # until the emulator closes (or the timeout fails this)
            answers += chunk

    first, refusal = answers.split(b"HTTP/1.1 431", 1)
    assert first.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in refusal.split(b"\r\n\r\n", 1)[0]


# --- S3's refusals: the emulator stores nothing S3 would refuse --------------------------------
def _s3(settings: Settings, emulator: str) -> Any:
    kwargs = client_kwargs(settings)
    kwargs.update(endpoint_url=emulator)
    return boto3.session.Session().client("s3", **kwargs)


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise
    return True


def _form_post(url: str, fields: dict[str, str], body: bytes, content_type: str) -> Any:
    """A browser-form POST of ``fields`` and a file, its Content-Type header spelt as given."""
    from urllib3 import encode_multipart_formdata

    data, form_type = encode_multipart_formdata([*fields.items(), ("file", ("a.mp3", body))])
    boundary = form_type.partition(";")[2]
    return httpx.post(url, content=data, headers={"Content-Type": f"{content_type};{boundary}"})


def _presigned_form(s3: Any, bucket: str, key: str) -> dict[str, str]:
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": "audio/mpeg"},
        Conditions=[{"Content-Type": "audio/mpeg"}, ["content-length-range", 1, 1000]],
        ExpiresIn=300,
    )
    return dict(post["fields"])


@pytest.mark.parametrize(
    "spelling", ["multipart/form-data", "Multipart/Form-Data", "MULTIPART/FORM-DATA"]
)
def test_a_form_post_is_held_to_its_policy_whatever_the_case_of_its_type(
    emulator: str, settings: Settings, spelling: str
):
    """A presigned POST's policy holds whatever the case of its Content-Type: another key is
    refused, the promised key is stored."""
    s3, bucket = _s3(settings, emulator), settings.uploads_bucket
    promised, other = f"uploads/case-{len(spelling)}/a.mp3", "uploads/victim/other.mp3"
    fields = _presigned_form(s3, bucket, promised)

    forged = _form_post(f"{emulator}/{bucket}", {**fields, "key": other}, b"x" * 10, spelling)
    honest = _form_post(f"{emulator}/{bucket}", fields, b"y" * 10, spelling)

    assert forged.status_code == 403 and b"AccessDenied" in forged.content
    assert not _exists(s3, bucket, other)
    assert honest.status_code in (200, 201, 204)
    assert s3.get_object(Bucket=bucket, Key=promised)["Body"].read() == b"y" * 10
    s3.delete_object(Bucket=bucket, Key=promised)


def test_an_urlencoded_post_to_a_bucket_is_refused(emulator: str, settings: Settings):
    """A POST to a bucket that is no multipart form is refused as S3 refuses it (412), and stores
    nothing."""
    s3, bucket = _s3(settings, emulator), settings.uploads_bucket
    key = "uploads/victim/urlencoded.mp3"

    answer = httpx.post(f"{emulator}/{bucket}", data={"key": key, "file": "x" * 10})

    assert answer.status_code == 412 and b"PreconditionFailed" in answer.content
    assert not _exists(s3, bucket, key)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_an_unsigned_write_to_an_object_is_access_denied(
    emulator: str, settings: Settings, method: str
):
    """A write with no Authorization header and no presigned signature is AccessDenied."""
    s3, bucket = _s3(settings, emulator), settings.uploads_bucket
    key = f"uploads/victim/unsigned-{method.lower()}.mp3"
    s3.put_object(Bucket=bucket, Key=key, Body=b"kept")

    answer = httpx.request(method, f"{emulator}/{bucket}/{key}", content=b"replaced")

    assert answer.status_code == 403 and b"<Code>AccessDenied</Code>" in answer.content
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"kept"
    s3.delete_object(Bucket=bucket, Key=key)


def test_a_write_signed_by_an_unknown_key_is_refused(emulator: str, settings: Settings):
    """A signature by an access key the emulator does not know is InvalidAccessKeyId."""
    kwargs = client_kwargs(settings)
    kwargs.update(endpoint_url=emulator, aws_access_key_id="AKIDUNKNOWN")
    stranger = boto3.session.Session().client("s3", **kwargs)

    with pytest.raises(ClientError) as refused:
        stranger.put_object(Bucket=settings.uploads_bucket, Key="uploads/x/y.mp3", Body=b"x")

    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_signed_writes_and_presigned_urls_still_work(emulator: str, settings: Settings):
    """What the product does stays allowed: SDK writes (single and multipart), presigned PUT and
    GET, deletes."""
    from boto3.s3.transfer import TransferConfig

    s3, bucket = _s3(settings, emulator), settings.media_bucket
    s3.put_object(Bucket=bucket, Key="signed/one", Body=b"one")
    big = b"z" * (6 * 2**20)
    s3.upload_fileobj(
        io.BytesIO(big),
        bucket,
        "signed/parts",
        Config=TransferConfig(multipart_threshold=5 * 2**20),
    )
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "signed/presigned"}, ExpiresIn=60
    )
    put = httpx.put(put_url, content=b"presigned")
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "signed/presigned"}, ExpiresIn=60
    )
    got = httpx.get(get_url)
    s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [{"Key": k} for k in ("signed/one", "signed/parts", "signed/presigned")]
        },
    )

    assert put.status_code == 200
    assert got.status_code == 200 and got.content == b"presigned"
    assert not _exists(s3, bucket, "signed/one")
