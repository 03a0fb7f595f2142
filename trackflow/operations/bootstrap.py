"""Create every AWS resource of a local stack, idempotently: safe to run again and again.

This is for the embedded emulator and LocalStack; real AWS accounts get the same resources from
Terraform (infra/), which tests/infra checks against the same settings.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from trackflow.adapters.aws import client
from trackflow.adapters.state.schema import TABLES, Table
from trackflow.logs import get_logger
from trackflow.settings import DLQ_SUFFIX, Settings

__all__ = ["bootstrap", "queue_url"]

log = get_logger(__name__)

DLQ_RETENTION_S = 14 * 24 * 3600  # the maximum: longer than any source queue's retention
QUEUE_RETENTION_S = 4 * 24 * 3600


def bootstrap(settings: Settings) -> dict[str, Any]:
    """Create buckets, queues, tables, the S3 -> SQS notification and the SES identity."""
    queues = {name: _ensure_queue(settings, name) for name in settings.all_queues}
    _ensure_bucket(settings, settings.uploads_bucket, cors=True)
    _keep_versions(settings, settings.uploads_bucket)
    _expire_originals(settings)
    _ensure_bucket(settings, settings.media_bucket, cors=True)
    _ensure_notification(settings, queues[settings.events_queue])
    for table in TABLES:
        _ensure_table(settings, table)
    client("ses", settings).verify_email_identity(EmailAddress=settings.email_sender)
    log.info("bootstrap_done", queues=len(queues), tables=len(TABLES))
    return {"queues": queues}


def queue_url(settings: Settings, name: str) -> str:
    return client("sqs", settings).get_queue_url(QueueName=name)["QueueUrl"]


def queue_arn(settings: Settings, url: str) -> str:
    attributes = client("sqs", settings).get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn"]
    )
    return attributes["Attributes"]["QueueArn"]


def _create_or_update_queue(settings: Settings, name: str, attributes: dict[str, str]) -> str:
    sqs = client("sqs", settings)
    try:
        return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
    url = queue_url(settings, name)
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def _ensure_queue(settings: Settings, name: str) -> str:
    """The queue with its dead-letter queue and redrive policy."""
    dlq_url = _create_or_update_queue(
        settings, name + DLQ_SUFFIX, {"MessageRetentionPeriod": str(DLQ_RETENTION_S)}
    )
    redrive = {
        "deadLetterTargetArn": queue_arn(settings, dlq_url),
        "maxReceiveCount": str(settings.max_receive_count),
    }
    return _create_or_update_queue(
        settings,
        name,
        {
            "VisibilityTimeout": str(settings.visibility_timeouts[name]),
            "MessageRetentionPeriod": str(QUEUE_RETENTION_S),
            "ReceiveMessageWaitTimeSeconds": str(settings.broker_wait_time_s),
            "RedrivePolicy": json.dumps(redrive),
        },
    )


def _ensure_bucket(settings: Settings, bucket: str, *, cors: bool) -> None:
    s3 = client("s3", settings)
    try:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
        s3.create_bucket(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] not in (
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
        ):
            raise
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    if cors:  # browsers upload straight to S3 (POST, or PUT of a part) and play from it
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedMethods": ["GET", "HEAD", "POST", "PUT"],
                        "AllowedOrigins": [settings.link_base],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 3000,
                    }
                ]
            },
        )


def _keep_versions(settings: Settings, bucket: str) -> None:
    """Version the bucket (as infra/modules/storage does): a presigned POST can be used again
    until it expires, and admission pins the version it admitted, which a later object under
    the same key must not replace. (The media bucket stays unversioned here: the emulator
    keeps every version in memory and runs no lifecycle rules to expire them.)"""
    client("s3", settings).put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )


def _expire_originals(settings: Settings) -> None:
    """Originals are kept for inspection and reprocessing, then expire, and versions replaced
    under their key a week later; abandoned multipart uploads are cleared after a day (as
    infra/modules/storage does in AWS)."""
    client("s3", settings).put_bucket_lifecycle_configuration(
        Bucket=settings.uploads_bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "abort-incomplete-uploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {
                        "DaysAfterInitiation": settings.multipart_abort_after_days
                    },
                },
                {
                    "ID": "expire-originals",
                    "Status": "Enabled",
                    "Filter": {"Prefix": settings.uploads_prefix},
                    "Expiration": {"Days": settings.originals_retention_days},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                },
            ]
        },
    )


def _ensure_notification(settings: Settings, events_url: str) -> None:
    """S3 ObjectCreated under the uploads prefix -> the events queue, allowed by a queue policy
    that admits only the uploads bucket."""
    sqs = client("sqs", settings)
    events_arn = queue_arn(settings, events_url)
    bucket_arn = f"arn:aws:s3:::{settings.uploads_bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "uploads-bucket-events",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": events_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": bucket_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=events_url, Attributes={"Policy": json.dumps(policy)})
    client("s3", settings).put_bucket_notification_configuration(
        Bucket=settings.uploads_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "uploads-to-events",
                    "QueueArn": events_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [{"Name": "prefix", "Value": settings.uploads_prefix}]
                        }
                    },
                }
            ]
        },
    )


def _ensure_table(settings: Settings, table: Table) -> None:
    dynamodb = client("dynamodb", settings)
    name = settings.table(table.name)
    definition: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": a, "AttributeType": table.attribute_type(a)}
            for a in table.key_attributes
        ],
        "KeySchema": _key_schema(table.hash_key, table.range_key),
    }
    if table.indexes:
        definition["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.hash_key, index.range_key),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in table.indexes
        ]
    try:
        dynamodb.create_table(**definition)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    _wait_active(dynamodb, name)
    if table.ttl_attribute:
        current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )


def _key_schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _wait_active(dynamodb: Any, name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} did not become active")
        time.sleep(0.2)
