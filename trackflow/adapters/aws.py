"""AWS clients for every part of trackflow: one place that knows endpoints, credentials and retries.

The same code talks to the embedded emulator, to LocalStack or to AWS; only the settings differ.
Clients are cached per process (Celery's prefork pool forks after import, and a connection pool
must not cross a fork).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from trackflow.settings import AwsTarget, Settings, get_settings

__all__ = ["S3Upload", "account_id", "client", "client_kwargs", "put_files", "s3_uri", "user_agent"]

# Standard retry mode: exponential backoff with jitter on throttling, 5xx and dropped connections.
_RETRIES = {"mode": "standard", "max_attempts": 8}
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def user_agent() -> str:
    """The User-Agent of this process's AWS requests: trackflow, and the ``app/`` name of the
    process if it has one (``AWS_SDK_UA_APP_ID``, which botocore reads too). Set once per
    client: botocore rebuilds its own (some thirty parts, each sanitised) for every request,
    a noticeable share of a DynamoDB call's client CPU."""
    app = os.environ.get("AWS_SDK_UA_APP_ID")
    return f"trackflow/{version('trackflow')}" + (f" app/{app}" if app else "")


@functools.cache
def account_id(settings: Settings) -> str:
    """The AWS account the queues live in: set, an emulator's fixed one, or STS's answer."""
    if settings.aws_account_id:
        return settings.aws_account_id
    if settings.aws_target is AwsTarget.EMBEDDED:
        return "123456789012"  # moto's
    if settings.aws_target is AwsTarget.LOCALSTACK:
        return "000000000000"  # LocalStack's
    return str(client("sts", settings).get_caller_identity()["Account"])


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for a boto3 or aiobotocore client."""
    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": Config(
            retries=_RETRIES,
            connect_timeout=5,
            read_timeout=max(60, settings.broker_wait_time_s + 10),
            max_pool_connections=32,
            s3={
                # Emulators serve buckets by path, not by virtual host.
                "addressing_style": "path" if settings.endpoint_url else "auto",
                # Uploads carry a CRC32 of their body either way; over HTTPS botocore already
                # leaves the body out of the signature, and over an emulator's plain HTTP it
                # would hash every byte uploaded once more (SHA-256) for nothing.
                "payload_signing_enabled": False,
            },
            user_agent=user_agent(),
        ),
    }
    if settings.endpoint_url:
        kwargs["endpoint_url"] = settings.endpoint_url
    if settings.aws_target is not AwsTarget.AWS and "AWS_ACCESS_KEY_ID" not in os.environ:
        kwargs.update(EMULATOR_CREDENTIALS)
    return kwargs


@functools.cache
def _client(service: str, settings: Settings, pid: int, validated: bool) -> Any:
    kwargs = client_kwargs(settings)
    if service == "s3":  # presigned URLs and POSTs signed with SigV4: S3 is retiring SigV2
        kwargs["config"] = kwargs["config"].merge(Config(signature_version="s3v4"))
    if not validated:
        kwargs["config"] = kwargs["config"].merge(Config(parameter_validation=False))
    return boto3.session.Session().client(service, **kwargs)


def client(service: str, settings: Settings | None = None, *, validated: bool = True) -> Any:
    """A boto3 client for ``service`` (s3, sqs, dynamodb, ses), cached per process.

    ``validated=False`` leaves out botocore's check of every request against the service model,
    for requests that one piece of code builds by the thousand in one fixed shape (the copyright
    catalogue's postings): the service still refuses a malformed one, and the check is a large
    share of such a request's client CPU (docs/performance.md)."""
    return _client(service, settings or get_settings(), os.getpid(), validated)


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """The bucket and key of an ``s3://bucket/key`` URI."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass(frozen=True)
class S3Upload:
    """One file to put into S3."""

    path: Path
    key: str
    content_type: str
    cache_control: str = "public, max-age=31536000, immutable"


SMALL_OBJECT_BYTES = 8 * 1024 * 1024


def abort_upload(settings: Settings, key: str, upload_id: str) -> None:
    """Abort a multipart upload to the uploads bucket; one completed or aborted already is no
    error (nothing is left to bill)."""
    s3 = client("s3", settings)
    try:
        s3.abort_multipart_upload(Bucket=settings.uploads_bucket, Key=key, UploadId=upload_id)
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
            raise


def put_files(
    bucket: str, uploads: Iterable[S3Upload], settings: Settings | None = None
) -> dict[str, str]:
    """Upload many files at once: small ones concurrently (aiobotocore) rather than one round
    trip after another, large ones streamed from their file, in one PUT up to
    ``multipart_upload_bytes`` and by multipart upload above, with bounded memory either way.
    Returns each key's ETag."""
    settings = settings or get_settings()
    uploads = list(uploads)
    small = [u for u in uploads if u.path.stat().st_size <= SMALL_OBJECT_BYTES]
    large = [u for u in uploads if u not in small]
    etags = _async_s3(settings, os.getpid()).put_all(bucket, small) if small else {}
    s3 = client("s3", settings)
    transfer = TransferConfig(multipart_threshold=settings.multipart_upload_bytes)
    for upload in large:
        s3.upload_file(
            str(upload.path),
            bucket,
            upload.key,
            ExtraArgs={"ContentType": upload.content_type, "CacheControl": upload.cache_control},
            Config=transfer,
        )
        etags[upload.key] = s3.head_object(Bucket=bucket, Key=upload.key)["ETag"]
    return etags


class _AsyncS3:
    """An aiobotocore S3 client kept open on an event loop of its own thread.

    A client is costly to build (it parses the S3 service model and builds a TLS context) and
    cheap to keep; its connections are reused from call to call.
    """

    def __init__(self, settings: Settings) -> None:
        from aiobotocore.session import get_session

        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="s3-uploads", daemon=True).start()
        self._opened = get_session().create_client("s3", **client_kwargs(settings))
        self._s3 = self._run(self._opened.__aenter__())
        self._limit = asyncio.Semaphore(16)
        self._pid = os.getpid()
        atexit.register(self.close)

    def close(self) -> None:
        """Close the connections; in this process only (a forked child has no loop thread)."""
        if os.getpid() == self._pid and self._loop.is_running():
            self._run(self._opened.__aexit__(None, None, None))
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def put_all(self, bucket: str, uploads: list[S3Upload]) -> dict[str, str]:
        async def put(upload: S3Upload) -> tuple[str, str]:
            async with self._limit:
                response = await self._s3.put_object(
                    Bucket=bucket,
                    Key=upload.key,
                    Body=upload.path.read_bytes(),
                    ContentType=upload.content_type,
                    CacheControl=upload.cache_control,
                )
                return upload.key, response["ETag"]

        async def put_every() -> dict[str, str]:
            return dict(await asyncio.gather(*(put(u) for u in uploads)))

        return self._run(put_every())


@functools.cache
def _async_s3(settings: Settings, pid: int) -> _AsyncS3:
    """One per process, like the boto3 clients (a forked child builds its own)."""
    return _AsyncS3(settings)
