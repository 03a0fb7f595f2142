"""Every name and limit trackflow runs with, defined once.

The resource bootstrap, the Celery app, the consumer, the API, the CLI and the infra consistency
tests all read this module; nothing else spells a bucket, queue or table name. Every field can be
set from the environment as ``TRACKFLOW_<FIELD>`` (``AWS_ENDPOINT_URL`` is honoured as well).
"""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AwsTarget",
    "Lane",
    "Settings",
    "WorkerGroup",
    "get_settings",
    "resource_names",
]


class AwsTarget(StrEnum):
    """Where the AWS APIs are served."""

    EMBEDDED = "embedded"  # moto server started by `trackflow up` on the loopback
    LOCALSTACK = "localstack"  # a LocalStack the user runs
    AWS = "aws"  # the real thing, credentials from the default chain


class WorkerGroup(StrEnum):
    """Worker groups: each has its own queues, workers and scaling."""

    CPU = "cpu"  # decoding, analysis, encoding, image work
    IO = "io"  # tags, search, feeds, email: mostly waiting on the network


class Lane(StrEnum):
    """Lanes: each worker group has a queue per lane, so that no kind of work waits behind
    another's backlog."""

    STANDARD = "standard"  # uploads
    PRIORITY = "priority"  # uploads of priority accounts
    BULK = "bulk"  # work no upload waits for: fingerprinting and indexing the catalogue


def resource_names(prefix: str) -> dict[str, str]:
    """Names of every bucket, queue and table for a name prefix such as ``trackflow-dev``.

    Terraform builds the same names from the same prefix; tests/infra checks that they agree.
    """
    names = {
        "uploads_bucket": f"{prefix}-uploads",
        "media_bucket": f"{prefix}-media",
        "events_queue": f"{prefix}-events",
        "tracks_table": f"{prefix}-tracks",
        "users_table": f"{prefix}-users",
        "follows_table": f"{prefix}-follows",
        "feeds_table": f"{prefix}-feeds",
        "catalogue_table": f"{prefix}-catalogue",
        "fingerprints_table": f"{prefix}-fingerprints",
        "idempotency_table": f"{prefix}-idempotency",
        "webhooks_table": f"{prefix}-webhooks",
        "webhook_events_table": f"{prefix}-webhook-events",
        "webhook_deliveries_table": f"{prefix}-webhook-deliveries",
    }
    for group in WorkerGroup:
        for lane in Lane:
            suffix = "" if lane is Lane.STANDARD else f"-{lane}"
            names[f"{group}_{lane}_queue"] = f"{prefix}-{group}{suffix}"
    return names


DLQ_SUFFIX = "-dlq"


class Settings(BaseSettings):
    """Configuration of one trackflow deployment (or of one local stack)."""

    model_config = SettingsConfigDict(env_prefix="TRACKFLOW_", frozen=True, extra="ignore")

    # --- where things run -------------------------------------------------------------------
    env: str = Field("local", pattern=r"^[a-z][a-z0-9-]{0,20}$")
    aws_target: AwsTarget = AwsTarget.EMBEDDED
    aws_endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("TRACKFLOW_AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL")
    )
    region: str = "us-east-1"
    aws_account_id: str | None = None  # default: the emulator's, or STS's answer on AWS
    emulator_host: str = "127.0.0.1"
    emulator_port: int = 4566
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_url: str | None = None  # how users reach the API (links in emails); default: api
    data_dir: Path = Path(".trackflow")  # local runtime files: lock, secret, search index, cache
    # Name prefix of every AWS resource; empty means trackflow-<env>.
    name_prefix: str = ""

    # --- authentication ---------------------------------------------------------------------
    token_secret: str | None = None  # HMAC secret for bearer tokens; local: generated once
    token_ttl_s: int = 12 * 3600
    # Every token must name this audience (``aud``), so that a token minted for another service
    # that shares the secret or the identity provider is not accepted here.
    token_audience: str = "trackflow-api"
    # Tokens whose exp - iat exceeds this are refused, whoever signed them: a leaked token
    # cannot outlive it, and a revocation stays bounded by it.
    token_max_lifetime_s: int = Field(24 * 3600, ge=60)
    # Names the embedded stack records as administrators in the users table when first seen
    # (the CLI's default --user admin, the tests). Ignored on every other target: there the
    # users table alone says who administers, as an administrator or operator set it.
    local_admins: tuple[str, ...] = ("admin",)
    # A deployment's OpenID Connect provider: when oidc_issuer is set, only its tokens are
    # accepted (RS256/ES256, keys from oidc_jwks_url, refetched when a token names a new key).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None  # default: token_audience
    oidc_jwks_url: str | None = None  # default: <issuer>/.well-known/jwks.json
    oidc_user_claim: str = "sub"  # the claim that names the user (a user name: a-z, 0-9, _.-)
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256")
    oidc_jwks_cache_s: int = Field(300, ge=1)  # how long fetched signing keys are trusted
    oidc_leeway_s: int = Field(30, ge=0, le=300)  # the provider's clock skew allowed on exp, iat
    # A token naming an unknown key refetches the keys at most this often, so that made-up key
    # ids cannot make every request a call to the provider.
    oidc_jwks_cooldown_s: float = Field(30.0, ge=0)

    # --- API requests -----------------------------------------------------------------------
    # Bodies are small JSON documents; a larger one is refused (413) before it is parsed.
    max_request_body_bytes: int = Field(64 * 1024, ge=1024)

    # --- per-user limits (api/limits.py; counted in DynamoDB, shared by every API replica) ----
    # A person dropping an album folder starts ~20 uploads at once; one a minute sustained
    # over the hour, and 500 a day, leave room for that several times over while a script that
    # mints presigned POSTs in a loop stops within the minute.
    limit_uploads_per_hour: int = Field(60, ge=1)
    limit_uploads_per_day: int = Field(500, ge=1)
    # Declared bytes (the policy's exact size; max_upload_bytes when none is declared): 500
    # five-minute lossless tracks a day, or 4 uploads at the size limit.
    limit_upload_bytes_per_day: int = Field(20 * 1024**3, ge=1)
    # Tracks not yet ended (awaiting upload, queued, processing, held): an album's worth. Counted
    # over the tracks created in the last in_flight_window_s (api/limits.py says why).
    limit_uploads_in_flight: int = Field(20, ge=1)
    in_flight_window_s: int = Field(24 * 3600, ge=3600)
    # Every reprocess is a whole workflow again (three encodes): a fix and a retry an hour.
    limit_reprocess_per_track_per_hour: int = Field(3, ge=1)
    # POST /v1/session per named user (embedded stack only); PATCH /v1/me per user.
    limit_sessions_per_hour: int = Field(30, ge=1)
    limit_profile_changes_per_hour: int = Field(10, ge=1)
    # Accounts flagged priority (PATCH /v1/users/{id} {"priority": true}) get every upload and
    # reprocess limit times this; administrators have none.
    priority_limits_factor: int = Field(5, ge=1)
    # Verification links one address may receive a day, whoever asks: a victim's address
    # typed into many profiles still gets at most this many mails from us.
    email_verifications_per_address_per_day: int = Field(3, ge=1)
    email_verification_ttl_s: int = Field(24 * 3600, ge=300)  # how long a link stays good

    # --- uploads ----------------------------------------------------------------------------
    uploads_prefix: str = "uploads/"
    # S3's largest single PUT or POST, and the size a multipart upload may declare here.
    max_upload_bytes: int = Field(5 * 1024**3, le=5 * 1024**3)
    presign_expiry_s: int = Field(900, le=900)
    # A declared size above this goes up in parts (api/storage.py plan_parts): a dropped
    # connection then costs one part, not the file. S3 takes one PUT or POST up to 5 GiB.
    multipart_threshold_bytes: int = Field(64 * 1024**2, ge=5 * 1024**2)
    # Parts are this long unless the file needs larger ones to fit S3's 10,000 parts; S3's
    # minimum for every part but the last is 5 MiB.
    multipart_part_bytes: int = Field(16 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    # An unfinished multipart upload is aborted this long after it began: by the uploads
    # bucket's lifecycle rule on AWS (infra/modules/storage), by the sweeper locally (moto
    # stores lifecycle rules but runs none).
    multipart_abort_after_days: int = Field(1, ge=1)
    audio_content_types: tuple[str, ...] = (
        "audio/mpeg",
        "audio/mp3",
        "audio/flac",
        "audio/x-flac",
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/aiff",
        "audio/x-aiff",
        "audio/ogg",
        "audio/opus",
        "audio/mp4",
        "audio/x-m4a",
        "audio/aac",
    )
    originals_retention_days: int = 90
    media_url_expiry_s: int = 3600  # presigned GETs of artwork, peaks and renditions
    # HLS segments: served through CloudFront when a domain is set (signed URLs, one custom
    # policy per playlist covering the track's streaming prefix), else presigned S3 GETs.
    media_cdn_domain: str | None = None
    media_cdn_key_pair_id: str | None = None  # the CloudFront public key's id (Terraform)
    media_cdn_private_key: str | None = None  # its RSA private key, PEM (a secret)

    # --- media ------------------------------------------------------------------------------
    min_duration_s: float = 1.0
    max_duration_s: float = 3 * 3600.0
    artwork_sizes: tuple[int, ...] = (16, 20, 32, 47, 67, 100, 300, 500)
    artwork_max_pixels: int = 16_800_000  # larger sources are refused (imgproxy's default)
    artwork_max_bytes: int = 20 * 1024 * 1024
    rendition_bitrates: tuple[int, ...] = (128, 192, 320)
    rendition_sample_rate: int = 44_100
    # The HLS ladder's segments: Apple's authoring spec asks for 6 s (7.5); a shorter one starts
    # playback and switches variants sooner, at more requests per minute played.
    hls_segment_seconds: float = Field(6.0, ge=1.0, le=10.0)
    # Loudness a player may aim for: the gains to reach each are in the record and playback
    # (streaming services: -14 LUFS; Apple Music -16; EBU R128 broadcast -23).
    playback_loudness_targets: tuple[float, ...] = (-14.0, -16.0, -23.0)
    loudness_target_lufs: float = -14.0
    true_peak_ceiling_dbtp: float = -1.0
    lossy_headroom_db: float = 1.5  # the lossless master's true peak stays this far below
    lossy_loudness_bias_lu: float = 0.2  # ... and its loudness this far above the target
    mp3_peak_allowance_db: float = 0.2  # MP3 renditions may peak this far over the ceiling
    silence_threshold_dbfs: float = -60.0
    waveform_samples_per_pixel: int = 512  # at the renditions' rate: 86 pixels a second
    waveform_bits: int = Field(8, description="8 or 16")
    waveform_png_width: int = 1800
    waveform_png_height: int = 280
    # Published tracks join the copyright catalogue with one landmark hash in this many: the
    # sample nominates the track and all of its landmarks decide, so a re-upload or a 10 s
    # excerpt is caught as well as from the full index, at a sixteenth of the index writes
    # (`make bench-copyright` measures what is caught).
    track_index_sampling: int = Field(16, ge=1)
    # Works a worker loads one by one beside the quad index's snapshot before a new snapshot
    # merges them (tasks/quad_index.py): each is one S3 read per worker process, once.
    quad_snapshot_works: int = Field(200, ge=1)

    # --- workers and queues -----------------------------------------------------------------
    cpu_task_time_limit_s: int = 1800
    io_task_time_limit_s: int = 300
    events_visibility_timeout_s: int = 60
    max_receive_count: int = 5
    step_max_retries: int = 5
    retry_backoff_max_s: int = 60
    broker_wait_time_s: int = 10  # SQS long poll
    cache_max_bytes: int = 10 * 1024**3  # each worker host's local copy of uploads
    # Artifacts up to this size go to S3 in one streamed PUT, larger ones in parts: AWS advises
    # parts from about 100 MB, and every part is a request to sign, send and assemble.
    multipart_upload_bytes: int = Field(64 * 1024**2, ge=5 * 1024**2)
    # A CPU step that finds every core of its host busy waits for one (tasks/cores.py), unless
    # it started this soon after becoming ready: then nothing was queued, and it shares a core.
    core_share_within_s: float = 1.0
    stalled_after_s: int = 300  # nothing running and no change for this long: messages lost
    stuck_after_s: int = 2400  # no change for this long, even with a step running (> limits)
    sweep_interval_s: float = 60.0

    # --- publishing -------------------------------------------------------------------------
    email_sender: str = "trackflow@example.com"
    email_rate_per_s: float = 14.0  # the SES account's send rate
    search_backend: str = Field("sqlite", pattern="^(sqlite|opensearch)$")
    opensearch_url: str | None = None
    feed_fanout_batch: int = 500

    # --- webhooks (Standard Webhooks; trackflow/domain/webhooks.py) ---------------------------
    # Loopback receivers and plain http: None means on the embedded stack only (local stacks and
    # tests run receivers on 127.0.0.1); deployments want https to public addresses.
    webhook_allow_loopback: bool | None = None
    webhook_timeout_s: float = Field(10.0, gt=0, le=30)  # the spec advises 15-30 s at most
    webhook_retry_for_s: int = Field(24 * 3600, ge=60)  # retries stop this long after the first
    # an endpoint that has failed every attempt for this long is disabled and its owner emailed
    webhook_disable_after_s: int = Field(3 * 24 * 3600, ge=60)
    webhook_secret_grace_s: int = Field(24 * 3600, ge=0)  # the old secret still signs this long
    webhook_max_endpoints: int = Field(20, ge=1)  # per user

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.waveform_bits not in (8, 16):
            raise ValueError("waveform_bits must be 8 or 16")
        shortest = min(self.visibility_timeouts[q] for q in self.worker_queues)
        if self.retry_backoff_max_s >= shortest:
            # A countdown longer than the visibility timeout runs the task again and again.
            raise ValueError("retry delays must stay below every worker queue's visibility timeout")
        return self

    # --- derived ----------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return self.name_prefix or f"trackflow-{self.env}"

    @property
    def local_sign_in(self) -> bool:
        """The embedded stack lets anyone act as any named user (the CLI's --user, the web
        client's name field); elsewhere (LocalStack included, which may be shared), tokens
        come from the deployment's identity provider or its secret."""
        return self.aws_target is AwsTarget.EMBEDDED

    @property
    def webhooks_allow_loopback(self) -> bool:
        """Whether webhooks may go to the loopback over plain http (local stacks and tests)."""
        if self.webhook_allow_loopback is None:
            return self.aws_target is AwsTarget.EMBEDDED
        return self.webhook_allow_loopback

    @functools.cached_property
    def names(self) -> dict[str, str]:
        return resource_names(self.prefix)

    @property
    def uploads_bucket(self) -> str:
        return self.names["uploads_bucket"]

    @property
    def media_bucket(self) -> str:
        return self.names["media_bucket"]

    @property
    def events_queue(self) -> str:
        return self.names["events_queue"]

    def table(self, name: str) -> str:
        """Table name for ``tracks``, ``users``, ``follows``, ... ."""
        return self.names[f"{name}_table"]

    def queue(self, group: WorkerGroup, lane: Lane = Lane.STANDARD) -> str:
        return self.names[f"{group}_{lane}_queue"]

    @property
    def worker_queues(self) -> list[str]:
        return [self.queue(group, lane) for group in WorkerGroup for lane in Lane]

    @property
    def all_queues(self) -> list[str]:
        """Every queue with a dead-letter queue of its own."""
        return [self.events_queue, *self.worker_queues]

    def task_time_limit(self, group: WorkerGroup) -> int:
        """Hard time limit of every task in a worker group."""
        return {
            WorkerGroup.CPU: self.cpu_task_time_limit_s,
            WorkerGroup.IO: self.io_task_time_limit_s,
        }[group]

    @property
    def visibility_timeouts(self) -> dict[str, int]:
        """Per queue: longer than the hard limit of every task on it, so no task runs twice."""
        timeouts = {self.events_queue: self.events_visibility_timeout_s}
        for group in WorkerGroup:
            for lane in Lane:
                timeouts[self.queue(group, lane)] = self.task_time_limit(group) + 60
        return timeouts

    @property
    def emulator_url(self) -> str:
        """Where the embedded emulator itself listens."""
        return f"http://{self.emulator_host}:{self.emulator_port}"

    @property
    def endpoint_url(self) -> str | None:
        """The AWS endpoint, or None for real AWS."""
        if self.aws_endpoint_url:
            return self.aws_endpoint_url
        if self.aws_target is AwsTarget.EMBEDDED:
            return self.emulator_url
        if self.aws_target is AwsTarget.LOCALSTACK:
            # localstack-client comes with the local stack (devstack/): deployments never need it
            from localstack_client.config import get_service_endpoint

            return get_service_endpoint("s3")
        return None

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def link_base(self) -> str:
        return (self.public_url or self.api_url).rstrip("/")


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()
