"""The embedded AWS emulator: moto in server mode (S3, SQS, DynamoDB, SES) on the loopback.

moto checks no S3 permissions, so the emulator must never listen beyond the loopback. It does
enforce, as S3 does, the policy of a presigned POST (signature, expiry, key, type and size,
whatever the case of its content type): that is how browsers and the CLI upload, and the limits
a client is given must hold locally too. Any other write to S3 must be signed by a known key.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import hashlib
import hmac
import io
import json
import logging
import re
import socket
import threading
import time
import urllib.request
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from werkzeug.exceptions import ClientDisconnected, HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import LimitedStream

from trackflow.adapters.aws import EMULATOR_CREDENTIALS

__all__ = ["EmulatorServer", "cpu_by_caller", "port_in_use", "sent_emails", "wait_until_serving"]

SENT_EMAILS_PATH = "/_aws/ses"  # LocalStack's path for the same listing
CPU_PATH = "/_trackflow/cpu"


class _AtomicDynamoDB:
    """WSGI middleware: each DynamoDB request applied whole, by moto's DynamoDB handler.

    moto changes DynamoDB items in place, without locks, so concurrent requests on one item can
    read it half written (seen here as counters losing counts); DynamoDB itself applies every
    request atomically. Here the requests on one table run one at a time, and requests on other
    tables beside them, so that a track's writes need not queue behind the catalogue's
    transactions of a hundred postings. A request that names no table (a listing, a PartiQL
    statement) runs alone. SQS long polls are left to run side by side.

    A DynamoDB request names its operation in a header, so it goes to moto's handler directly,
    without the routing of moto's Flask apps.
    """

    _TARGET = "DynamoDB_20120810."

    def __init__(self, app: Any) -> None:
        from moto.dynamodb.responses import DynamoHandler

        self._app = app
        self._handler = DynamoHandler
        # Held for the whole of a request that names no table, and for a moment by the others,
        # to find their tables' locks: a new table's lock never appears under such a request.
        self._every_table = threading.Lock()
        self._table_locks: dict[str, threading.Lock] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(self._TARGET):
            return self._app(environ, start_response)
        request = Request(environ)
        try:
            with self._locked(_tables_named(request.get_data())):
                status, headers, body = self._handler.dispatch(
                    request, request.url, dict(request.headers)
                )
        except HTTPException as error:  # moto's errors are answers, as Flask would send them
            return error(environ, start_response)
        return Response(body, status, headers)(environ, start_response)

    @contextlib.contextmanager
    def _locked(self, tables: list[str] | None) -> Iterator[None]:
        with contextlib.ExitStack() as held:
            if tables is None:
                held.enter_context(self._every_table)
                locks = [self._table_locks[t] for t in sorted(self._table_locks)]
            else:
                with self._every_table:
                    locks = [self._table_locks.setdefault(t, threading.Lock()) for t in tables]
            for lock in locks:  # always in name order: two requests never wait on each other
                held.enter_context(lock)
            yield


def _tables_named(body: bytes) -> list[str] | None:
    """The tables a DynamoDB request touches, sorted by name; None when it names none."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None
    names: list[Any] = []
    if isinstance(request, dict):
        if "TableName" in request:
            names = [request["TableName"]]
        elif isinstance(request.get("RequestItems"), dict):  # BatchGetItem, BatchWriteItem
            names = list(request["RequestItems"])
        elif isinstance(request.get("TransactItems"), list):
            names = [
                operation.get("TableName")
                for action in request["TransactItems"]
                if isinstance(action, dict)
                for operation in action.values()
                if isinstance(operation, dict)
            ]
    # a table's ARN and its name are one table
    tables = {
        n.rpartition(":table/")[2] if n.startswith("arn:") else n
        for n in names
        if isinstance(n, str)
    }
    return sorted(tables) or None


class PolicyViolation(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# Form fields that S3 does not require a policy condition for.
_UNCONDITIONED = {"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"}


def _check_signature(fields: dict[str, str], secrets: dict[str, str]) -> None:
    """The policy signed with the access key's secret: SigV4, or SigV2 as older clients send."""
    if "x-amz-credential" in fields:
        access_key, date, region, *_ = [*fields["x-amz-credential"].split("/"), "", "", ""]
        secret = secrets.get(access_key)
        signature = fields.get("x-amz-signature", "")
        expected = (
            secret
            and hmac.new(
                _signing_key(secret, date, region), fields["policy"].encode(), hashlib.sha256
            ).hexdigest()
        )
    else:
        secret = secrets.get(fields.get("AWSAccessKeyId", ""))
        signature = fields.get("signature", "")
        expected = (
            secret
            and base64.b64encode(
                hmac.new(secret.encode(), fields["policy"].encode(), hashlib.sha1).digest()
            ).decode()
        )
    if not expected:
        raise PolicyViolation(403, "InvalidAccessKeyId", "The access key ID does not exist.")
    if not hmac.compare_digest(expected, signature):
        raise PolicyViolation(403, "SignatureDoesNotMatch", "The request signature does not match.")


def check_post_policy(
    fields: dict[str, str], size: int, bucket: str, secrets: dict[str, str], now: datetime
) -> None:
    """Refuse a browser-form upload as S3 does when its signed policy does not allow it."""
    if "policy" not in fields:
        raise PolicyViolation(
            403, "AccessDenied", "Bucket POST must contain a field named 'policy'."
        )
    _check_signature(fields, secrets)
    policy = json.loads(base64.b64decode(fields["policy"]))
    if datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")) < now:
        raise PolicyViolation(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    values = {name.lower(): value for name, value in fields.items()} | {"bucket": bucket}
    covered = set()
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            ((name, value),) = condition.items()
            condition = ["eq", f"${name}", value]
        operator, *args = condition
        if operator == "content-length-range":
            low, high = args
            if size > int(high):
                raise PolicyViolation(
                    400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
                )
            if size < int(low):
                raise PolicyViolation(
                    400,
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size.",
                )
            continue
        name = args[0].lstrip("$").lower()
        covered.add(name)
        actual = values.get(name, "")
        if (operator == "eq" and actual != args[1]) or (
            operator == "starts-with" and not actual.startswith(args[1])
        ):
            raise PolicyViolation(
                403,
                "AccessDenied",
                f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}",
            )
    extra = {
        name
        for name in values
        if name not in covered | _UNCONDITIONED | {"bucket"} and not name.startswith("x-ignore-")
    }
    if extra:
        raise PolicyViolation(
            403,
            "AccessDenied",
            f"Invalid according to Policy: Extra input fields: {', '.join(sorted(extra))}",
        )


# Paths the emulator and moto answer themselves: no bucket lives there.
_OWN_PATHS = ("/moto-api", "/_aws/", "/_trackflow/")
_WRITES = frozenset({"PUT", "POST", "DELETE", "PATCH"})
# Query parameters that make a URL a presigned request (SigV4, SigV2)
_PRESIGNED = ("X-Amz-Signature", "Signature")


def _split_content_type(environ: dict[str, Any]) -> tuple[str, str]:
    """The media type, lowercased, and the parameters as sent: the type is case-insensitive
    (RFC 9110), a multipart boundary is not."""
    raw = environ.get("CONTENT_TYPE", "")
    media_type, _, parameters = raw.partition(";")
    return media_type.strip().lower(), parameters


def _signing_scope(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(access key, service) a SigV4 request claims, from its Authorization header or its
    presigned query; None when it claims none."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    found = re.search(r"Credential=([^/,\s]*)/[^/]*/[^/]*/([^/,\s]*)/", header)
    if found:
        return found.group(1), found.group(2)
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
    parts = credential.split("/")
    return (parts[0], parts[3]) if len(parts) >= 4 else None


def _access_key(environ: dict[str, Any]) -> str | None:
    """The access key a request says signed it (SigV4 or SigV2, header or presigned URL)."""
    scope = _signing_scope(environ)
    if scope:
        return scope[0]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Signature" in query and "AWSAccessKeyId" in query:
        return query["AWSAccessKeyId"][0]
    sigv2 = re.fullmatch(r"AWS ([^:\s]+):\S+", environ.get("HTTP_AUTHORIZATION", "").strip())
    return sigv2.group(1) if sigv2 else None


def _is_signed(environ: dict[str, Any]) -> bool:
    """Whether the request carries any signature at all, well formed or not."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    return bool(environ.get("HTTP_AUTHORIZATION")) or any(name in query for name in _PRESIGNED)


def _addressed_to_s3(environ: dict[str, Any]) -> bool:
    """Whether moto would route the request to S3: no JSON target (DynamoDB, SQS), no other
    service's signature (SES and SQS sign their query-protocol forms), not the emulator's own
    listings."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        return False
    if environ.get("PATH_INFO", "/").startswith(_OWN_PATHS):
        return False
    scope = _signing_scope(environ)
    return scope is None or scope[1].lower() == "s3"


def _bucket(environ: dict[str, Any]) -> str:
    return environ.get("PATH_INFO", "/").lstrip("/").split("/")[0]


def check_signed_write(environ: dict[str, Any], secrets: dict[str, str]) -> None:
    """Refuse, as S3 does, a write that no access key signed (only a browser form may come
    unsigned, and it carries a signed policy instead), and a signature by a key that does not
    exist.

    The signature itself is not recomputed: the emulator's only credential is a constant in the
    source, so a correct signature would prove no more than a well-formed one. What matters is
    that a holder of a presigned POST cannot write by leaving the signature out.
    """
    if not _is_signed(environ):
        path = environ.get("PATH_INFO", "/").strip("/")
        if environ["REQUEST_METHOD"] == "POST" and path and "/" not in path:  # the bucket itself
            raise PolicyViolation(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold: "
                "Bucket POST must be of the enclosure-type multipart/form-data",
            )
        raise PolicyViolation(403, "AccessDenied", "Access Denied")
    access_key = _access_key(environ)
    if access_key is None:
        raise PolicyViolation(403, "AccessDenied", "The authorization header is malformed.")
    if access_key not in secrets:
        raise PolicyViolation(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )


_REASONS = {400: "Bad Request", 403: "Forbidden", 412: "Precondition Failed"}


class _PostPolicy:
    """WSGI middleware: S3's checks of a write before moto, which checks none, stores it.

    A browser-form POST (``multipart/form-data`` in any case) must satisfy its signed policy; any
    other write to S3 must be signed (the SDK's Authorization header or a presigned URL). An
    urlencoded POST is no form upload to S3, and is refused as S3 refuses it.
    """

    def __init__(self, app: Any, secrets: dict[str, str]) -> None:
        self._app, self._secrets = app, secrets

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] not in _WRITES or not _addressed_to_s3(environ):
            return self._app(environ, start_response)
        media_type, parameters = _split_content_type(environ)
        # S3 treats any POST to a bucket as a form upload; a signed POST with a subresource
        # (?uploads, ?delete, ...) is an SDK call that happens to carry such a type.
        is_form = (
            environ["REQUEST_METHOD"] == "POST"
            and media_type == "multipart/form-data"
            and not (environ.get("QUERY_STRING") and _access_key(environ) in self._secrets)
        )
        try:
            if is_form:
                # moto and werkzeug parse the form only when they see the type in lower case
                environ["CONTENT_TYPE"] = f"{media_type};{parameters}" if parameters else media_type
                self._check_form(environ)
            else:
                check_signed_write(environ, self._secrets)
        except PolicyViolation as refused:
            xml = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{refused.code}</Code>"
                f"<Message>{escape(refused.message)}</Message></Error>"
            ).encode()
            headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))]
            if "HTTP_ORIGIN" in environ:  # as moto answers: a browser may then read why
                headers.append(("Access-Control-Allow-Origin", environ["HTTP_ORIGIN"]))
            start_response(f"{refused.status} {_REASONS[refused.status]}", headers)
            return [xml]
        return self._app(environ, start_response)

    def _check_form(self, environ: dict[str, Any]) -> None:
        from werkzeug.formparser import parse_form_data

        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        _, form, files = parse_form_data(environ)
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the form again
        upload = files.get("file")
        size = len(upload.read()) if upload else 0
        check_post_policy(
            dict(form.items()), size, _bucket(environ), self._secrets, datetime.now(UTC)
        )


class _PartChecksums:
    """WSGI middleware: a part's ``x-amz-checksum-crc32`` checked against its bytes, as S3
    checks it (moto 5.1 stores a part whatever CRC it names), so that a client that sends a part
    other than the one whose checksum its URL signed is refused here as there.

    What it cannot check: that the header's value is the one the presigned URL signed (the
    emulator recomputes no signature; see ``check_signed_write``).
    """

    _HEADER = "HTTP_X_AMZ_CHECKSUM_CRC32"

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        length = environ.get("CONTENT_LENGTH") or ""
        if (
            environ["REQUEST_METHOD"] != "PUT"
            or "partNumber" not in query
            or "uploadId" not in query
            or self._HEADER not in environ
            or not length.isdigit()
        ):
            return self._app(environ, start_response)
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the part again
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        if hmac.compare_digest(crc, environ[self._HEADER].strip()):
            return self._app(environ, start_response)
        xml = (
            b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>BadDigest</Code><Message>"
            b"The CRC32 you specified did not match the calculated checksum.</Message></Error>"
        )
        headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))]
        if "HTTP_ORIGIN" in environ:  # a browser may then read why
            headers.append(("Access-Control-Allow-Origin", environ["HTTP_ORIGIN"]))
        start_response("400 Bad Request", headers)
        return [xml]


def _destination(destinations: dict[str, list[str]] | list[str]) -> dict[str, list[str]]:
    # moto keeps a raw message's recipients as a bare list
    return destinations if isinstance(destinations, dict) else {"ToAddresses": list(destinations)}


def _json_answer(start_response: Any, payload: dict[str, Any]) -> list[bytes]:
    """A 200 with ``payload`` as JSON: the emulator's own listings."""
    body = json.dumps(payload).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class _SentEmails:
    """WSGI middleware: ``GET /_aws/ses`` lists the messages SES accepted, as LocalStack does.

    moto keeps sent mail instead of delivering it, but shows it only in its dump of all state,
    which walks live objects as they change (it answers 500 under load). This reads SES alone,
    and speaks LocalStack's shape, so the same check works against either emulator.
    """

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] != "GET" or environ.get("PATH_INFO") != SENT_EMAILS_PATH:
            return self._app(environ, start_response)
        from moto.ses.models import ses_backends

        messages = [
            {
                "Id": message.id,
                "Region": region,
                "Source": message.source,
                "Destination": _destination(message.destinations),
                "Subject": getattr(message, "subject", None),
                "Body": getattr(message, "body", None),
            }
            for _account, region, backend in ses_backends.iter_backends()
            # a copy of the list: workers append to it as we read
            for message in list(backend.sent_messages)  # type: ignore[attr-defined]
        ]
        return _json_answer(start_response, {"messages": messages})


class _WholeObjectChecksums:
    """WSGI middleware: an object's CRC32 as S3 reports it, over the whole object.

    boto3 uploads a large file in parts with a CRC32 of the whole object, and checks the CRC32 that
    a GET answers with. moto 5.1 answers, for an object uploaded in parts, with a checksum of the
    parts' checksums (and without the ``-<parts>`` suffix that marks such a one), so every large
    download failed its check (FlexibleChecksumError). Recomputed here from the body moto serves
    whole; ranged answers (206) carry no whole-object checksum to check.
    """

    _HEADER = "x-amz-checksum-crc32"

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] != "GET" or environ.get("HTTP_X_AMZ_TARGET"):
            return self._app(environ, start_response)
        answer: dict[str, Any] = {}

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers, exc_info=exc_info)
            return lambda data: None  # moto never writes through this

        result = self._app(environ, hold)
        headers = answer["headers"]
        if not answer["status"].startswith("200") or all(
            k.lower() != self._HEADER for k, _ in headers
        ):
            start_response(answer["status"], headers, answer["exc_info"])
            return result  # nothing to recompute: streamed as moto answers it
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        headers = [(k, crc if k.lower() == self._HEADER else v) for k, v in headers]
        start_response(answer["status"], headers, answer["exc_info"])
        return [body]


class _CpuByCaller:
    """WSGI middleware: the emulator's CPU seconds and requests, by caller and operation.

    The emulator shares the workers' cores, and its CPU is part of what the whole system costs
    there (`make bench-e2e`); on AWS that share is AWS's. The caller is the ``app/…`` part of
    the User-Agent (the stack names each of its processes there: ``AWS_SDK_UA_APP_ID``);
    ``GET /_trackflow/cpu`` lists the totals so far.
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], list[float]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "GET" and environ.get("PATH_INFO") == CPU_PATH:
            with self._lock:
                rows = [
                    {"caller": caller, "operation": op, "cpu_s": cpu, "requests": int(n)}
                    for (caller, op), (cpu, n) in self._totals.items()
                ]
            return _json_answer(start_response, {"rows": rows})
        started = time.thread_time()
        try:
            return self._app(environ, start_response)
        finally:
            key = (_caller(environ), _operation(environ))
            with self._lock:
                total = self._totals.setdefault(key, [0.0, 0])
                total[0] += time.thread_time() - started
                total[1] += 1


def _caller(environ: dict[str, Any]) -> str:
    found = re.search(r"(?:^| )app/(\S+)", environ.get("HTTP_USER_AGENT", ""))
    return found.group(1) if found else "other"


def _operation(environ: dict[str, Any]) -> str:
    """``DynamoDB UpdateItem``, ``SQS ReceiveMessage``, ``s3 PUT``: the action from the target,
    else the service from the signature's scope (a browser's form upload has none: S3)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        service, _, action = target.rpartition(".")
        return f"{service.split('_')[0].removeprefix('Amazon')} {action}"
    scope = re.search(
        r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", "")
    )
    return f"{scope.group(1) if scope else 's3'} {environ['REQUEST_METHOD']}"


class _KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's request handler, keeping the connection open for the client's next request.

    werkzeug closes every connection after one response, as http.server cannot tell where a
    request body the app left unread ends. Here the app reads the body through a stream that stops
    at its Content-Length, and what it leaves is skipped before the next request. A chunked body
    has no such end, so its connection still closes. AWS keeps connections open too, so clients
    behave here as they do there.
    """

    timeout = 60  # seconds an idle connection is kept; clients reconnect after
    # Headers and body go out in separate writes: Nagle's algorithm would hold the body back until
    # the client's delayed ACK of the headers, tens of milliseconds on a kept connection.
    disable_nagle_algorithm = True
    _reusable = False

    def run_wsgi(self) -> None:
        length = self.headers.get("Content-Length") or "0"
        self._reusable = length.isdigit() and "Transfer-Encoding" not in self.headers
        if not self._reusable:
            return super().run_wsgi()
        connection_stream: Any = self.rfile
        body = LimitedStream(connection_stream, int(length))
        self.rfile = body  # type: ignore[assignment]
        try:
            super().run_wsgi()
            body.exhaust()
        except ClientDisconnected:
            self.close_connection = True
        finally:
            self.rfile = connection_stream
            self._reusable = False  # an error answer to a bad next request still says "close"

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value == "close" and self._reusable:
            return
        super().send_header(keyword, value)


_backing_up_by_item = threading.local()


class _Tables(OrderedDict[str, Any]):
    """A backend's tables. A transaction backed up by item (in its own thread) finds none of
    them ``in`` this mapping, so moto backs up no whole table for it."""

    def __contains__(self, name: object) -> bool:
        return not getattr(_backing_up_by_item, "active", False) and super().__contains__(name)


@functools.cache
def _back_up_transactions_by_item() -> None:
    """moto backs up the table of each item a TransactWriteItems names, a deep copy of the whole
    table, to roll a cancelled transaction back: a catalogue join's transaction of 100 items on
    a table of thousands would keep a user of `make run` waiting for tens of seconds. Here a
    transaction backs up only the items it names, and a cancelled one puts those back: no other
    request touches those tables meanwhile (``_AtomicDynamoDB``)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType

    transact = DynamoDBBackend.transact_write_items
    create_backend = DynamoDBBackend.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        create_backend(self, *args, **kwargs)
        self.tables = _Tables(self.tables)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups = []
        for action in transact_items:
            op: dict[str, Any] = next(iter(action.values()), {})
            table = self.tables.get(op.get("TableName"))
            key = op.get("Key") or op.get("Item") or {}
            names = [table.hash_key_attr, table.range_key_attr] if table else []
            if not names or any(name and name not in key for name in names):
                continue  # moto writes nothing for it, and cancels the transaction
            hash_key, range_key = (DynamoType(key[n]) if n else None for n in names)
            item = table.get_item(hash_key, range_key)
            backups.append((table, hash_key, range_key, copy.deepcopy(item)))
        _backing_up_by_item.active = True
        try:
            transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(backups):
                rows, slot = (
                    (table.items, hash_key)
                    if range_key is None
                    else (table.items[hash_key], range_key)
                )
                if item is None:
                    rows.pop(slot, None)
                else:
                    rows[slot] = item
            raise
        finally:
            _backing_up_by_item.active = False

    DynamoDBBackend.__init__ = __init__  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class EmulatorServer:
    """A moto server in this process; ``start()`` returns once it answers."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the emulator enforces no access control: loopback only")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        _back_up_transactions_by_item()
        self.host, self.port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        secrets = {
            EMULATOR_CREDENTIALS["aws_access_key_id"]: EMULATOR_CREDENTIALS["aws_secret_access_key"]
        }

        def backend_app(service: Any) -> Any:
            app = create_backend_app(service)
            # moto turns on Flask's debug mode, whose checks cost every request; without it an
            # error is still answered 500 and logged.
            app.debug = False
            return app

        moto = DomainDispatcherApplication(backend_app)
        app = _CpuByCaller(
            _SentEmails(
                _WholeObjectChecksums(_PostPolicy(_PartChecksums(_AtomicDynamoDB(moto)), secrets))
            )
        )
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=_KeepAliveHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="emulator"
        )
        self._thread.start()
        wait_until_serving(self.url)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
        if self._thread:
            self._thread.join()


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_until_serving(url: str, timeout_s: float = 30) -> None:
    """Poll the emulator's health endpoint until it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no emulator answered at {url}") from None
            time.sleep(0.1)


def sent_emails(url: str) -> list[dict[str, Any]]:
    """Messages the emulator's SES accepted, in LocalStack's shape (``Destination``, ``Subject``).

    Works on the embedded emulator and on LocalStack alike: neither delivers mail.
    """
    with urllib.request.urlopen(f"{url}{SENT_EMAILS_PATH}", timeout=10) as response:
        return list(json.load(response)["messages"])


def cpu_by_caller(url: str) -> list[dict[str, Any]]:
    """The embedded emulator's CPU seconds and requests so far, by caller and operation."""
    with urllib.request.urlopen(f"{url}{CPU_PATH}", timeout=10) as response:
        return list(json.load(response)["rows"])
