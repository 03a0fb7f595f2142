"""AWS clients for every part of trackflow: one place that knows endpoints, credentials and retries.

The same code talks to the embedded emulator, to LocalStack or to AWS; only the settings differ.
Clients are cached per process (Celery's prefork pool forks after import, and a connection pool
must not cross a fork).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from trackflow.settings import AwsTarget, Settings, get_settings

__all__ = ["S3Upload", "client", "client_kwargs", "put_files", "s3_uri"]

# Standard retry mode: exponential backoff with jitter on throttling, 5xx and dropped connections.
_RETRIES = {"mode": "standard", "max_attempts": 8}
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for a boto3 or aiobotocore client."""
    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": Config(
            retries=_RETRIES,
            connect_timeout=5,
            read_timeout=max(60, settings.broker_wait_time_s + 10),
            max_pool_connections=32,
            # Emulators serve buckets by path, not by virtual host.
            s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
        ),
    }
    if settings.endpoint_url:
        kwargs["endpoint_url"] = settings.endpoint_url
    if settings.aws_target is not AwsTarget.AWS and "AWS_ACCESS_KEY_ID" not in os.environ:
        kwargs.update(EMULATOR_CREDENTIALS)
    return kwargs


@functools.cache
def _client(service: str, settings: Settings, pid: int) -> Any:
    kwargs = client_kwargs(settings)
    if service == "s3":  # presigned URLs and POSTs signed with SigV4: S3 is retiring SigV2
        kwargs["config"] = kwargs["config"].merge(Config(signature_version="s3v4"))
    return boto3.session.Session().client(service, **kwargs)


def client(service: str, settings: Settings | None = None) -> Any:
    """A boto3 client for ``service`` (s3, sqs, dynamodb, ses), cached per process."""
    return _client(service, settings or get_settings(), os.getpid())


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


def put_files(bucket: str, uploads: Iterable[S3Upload], settings: Settings | None = None) -> None:
    """Upload many files at once: small ones concurrently (aiobotocore) rather than one round
    trip after another, large ones by multipart upload with bounded memory."""
    settings = settings or get_settings()
    uploads = list(uploads)
    small = [u for u in uploads if u.path.stat().st_size <= SMALL_OBJECT_BYTES]
    large = [u for u in uploads if u not in small]
    if small:
        asyncio.run(_put_small(bucket, small, settings))
    s3 = client("s3", settings)
    for upload in large:
        s3.upload_file(
            str(upload.path),
            bucket,
            upload.key,
            ExtraArgs={"ContentType": upload.content_type, "CacheControl": upload.cache_control},
        )


async def _put_small(bucket: str, uploads: list[S3Upload], settings: Settings) -> None:
    from aiobotocore.session import get_session

    limit = asyncio.Semaphore(16)
    async with get_session().create_client("s3", **client_kwargs(settings)) as s3:

        async def put(upload: S3Upload) -> None:
            async with limit:
                await s3.put_object(
                    Bucket=bucket,
                    Key=upload.key,
                    Body=upload.path.read_bytes(),
                    ContentType=upload.content_type,
                    CacheControl=upload.cache_control,
                )

        await asyncio.gather(*(put(u) for u in uploads))
