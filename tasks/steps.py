"""The steps of the workflow: thin shells that fetch inputs, call the media core, store outputs.

Each is named ``trackflow.<step>`` for good (task names are a contract with messages already in
the queues); the workflow's stages, gates and each step's inputs are in ``trackflow.pipeline.flow``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from trackflow.adapters import aws
from trackflow.adapters.mail import send_email
from trackflow.adapters.search import TrackDocument, open_search
from trackflow.adapters.state.catalogue import WorkStatus, chunk_count, pack_landmarks
from trackflow.adapters.state.dynamo import now_iso
from trackflow.adapters.state.ratelimit import RateLimiter
from trackflow.adapters.state.users import UserStore
from trackflow.domain.copyright import judge, landmark_evidence, quad_evidence
from trackflow.domain.emails import compose, deliverable_address
from trackflow.domain.keys import (
    NORMALISED_ARTIFACT,
    PEAKS_ARTIFACT,
    QUADS_ARTIFACT,
    rendition_artifact,
    stream_folder,
)
from trackflow.domain.track import Status, lane_of
from trackflow.errors import NotReady, WaitForSlot
from trackflow.logs import get_logger
from trackflow.media import fingerprint, invariant, recipes, streaming, transcode
from trackflow.media.ffmpeg import LoudnessStats
from trackflow.pipeline.flow import Move
from trackflow.tasks.catalogue import (
    all_landmarks,
    catalogue_store,
    indexed_landmarks,
    quad_index,
    start_indexing,
)
from trackflow.tasks.feeds import fan_out, feed_entry
from trackflow.tasks.runtime import StepContext, StepResult, step, track_store
from trackflow.tasks.workflow import move

log = get_logger(__name__)

FINGERPRINT_ARTIFACT = "fingerprint/landmarks.npz"
COVER_ARTIFACT = "artwork/500.jpg"  # embedded in the renditions


def _fallback_title(ctx: StepContext) -> str:
    return Path(ctx.track.get("filename", "")).stem or "Untitled"


# --- branch one: tags and artwork -------------------------------------------------------------
@step("extract_metadata")
def extract_metadata(ctx: StepContext) -> StepResult:
    """Tags and technical facts of the upload (after the input gate)."""
    metadata = recipes.extract_metadata(ctx.original(), ctx.gate(), _fallback_title(ctx))
    return StepResult(fields={"metadata": metadata})


@step("resize_artwork")
def resize_artwork(ctx: StepContext) -> StepResult:
    """Every artwork size at 1x and 2x, JPEG and WebP; a bad picture fails nothing."""
    result = recipes.resize_artwork(
        ctx.original(), ctx.gate(), ctx.workdir / "artwork", ctx.settings
    )
    outputs = ctx.store(
        (f"artwork/{r.name}.{r.extension}", r.path, r.content_type) for r in result.renditions
    )
    return StepResult(fields={"artwork": result.as_record()}, outputs=outputs)


# --- branch two: audio ------------------------------------------------------------------------
@step("analyse_waveform")
def analyse_waveform(ctx: StepContext) -> StepResult:
    """Peaks (audiowaveform JSON v2), a PNG graph, levels, cue points and input loudness."""
    files = recipes.analyse_waveform(ctx.original(), ctx.gate(), ctx.workdir, ctx.settings)
    outputs = ctx.store(
        [
            (PEAKS_ARTIFACT, files.peaks, "application/json"),
            ("waveform/waveform.png", files.png, "image/png"),
        ]
    )
    record = files.analysis.as_record()
    measured = record.pop("loudness")
    return StepResult(fields={"waveform": record, "loudness": {"input": measured}}, outputs=outputs)


@step("normalise_audio")
def normalise_audio(ctx: StepContext) -> StepResult:
    """Bring the track to the target loudness under the true-peak ceiling (lossless master)."""
    out = ctx.workdir / "normalised.flac"
    result = recipes.normalise_audio(
        ctx.original(),
        ctx.gate(),
        LoudnessStats.from_record(ctx.track["loudness"]["input"]),
        out,
        ctx.settings,
    )
    outputs = ctx.store([(NORMALISED_ARTIFACT, out, "audio/flac")])
    # the renditions are encoded from this master: its loudness is theirs, for players' gains
    played = result.output
    playback = streaming.playback_loudness(
        played.integrated_lufs,
        played.range_lu,
        played.true_peak_dbtp,
        ctx.settings.playback_loudness_targets,
    )
    return StepResult(
        fields={"loudness": result.as_record() | {"playback": playback}}, outputs=outputs
    )


@step("check_copyright")
def check_copyright(ctx: StepContext) -> StepResult:
    """Match the upload's fingerprints against the catalogue: pass, hold for review or reject.
    Landmarks find copies and excerpts from a few index reads; quads find them after a change
    of tempo, pitch or speed, from this host's copy of the quad index."""
    s = ctx.settings
    prints, upload = recipes.fingerprint_upload(ctx.original(), ctx.gate(), s, ctx.workdir)
    landmarks_path = ctx.workdir / "landmarks.npz"
    landmarks_path.write_bytes(pack_landmarks(prints.hashes, prints.times))
    quads_path = ctx.workdir / "quads.npz"
    quads_path.write_bytes(invariant.pack_work(prints.quads, prints.peaks))
    outputs = ctx.store(
        [
            (FINGERPRINT_ARTIFACT, landmarks_path, "application/octet-stream"),
            (QUADS_ARTIFACT, quads_path, "application/octet-stream"),
        ]
    )
    catalogue = catalogue_store(s)
    policy = fingerprint.MatchPolicy()
    matches = fingerprint.match_catalogue(
        prints.hashes,
        prints.times,
        catalogue.lookup,
        functools.partial(catalogue.lookup, sampled=True),
        s.track_index_sampling,
        lambda number: all_landmarks(catalogue.works([number]).get(number), s),
        policy,
    )
    quads = quad_index(s)
    quad_policy = invariant.InvariantPolicy()
    changed, asked = invariant.match_quads(upload, quads.lookup, quads.peaks, quad_policy)
    evidence = landmark_evidence(matches, policy) + quad_evidence(changed, quad_policy)
    verdict = judge(evidence, catalogue.works(e.work for e in evidence), ctx.track["owner"])
    record = {
        **verdict.as_record(),
        "checked_at": now_iso(),
        "landmarks": len(prints.hashes),
        "quads": {"entries": len(prints.quads.a_times), "asked": asked["keys"]},
    }
    store = track_store(s)
    if verdict.outcome == "match":
        # the one writer that wins the move tells the uploader; if it lost, the track had
        # already ended, and that told them
        move(
            store,
            ctx.track_id,
            Move.REJECT,
            fields={
                "error": {
                    "code": "copyright_match",
                    "message": verdict.message(),
                    "step": "check_copyright",
                },
                "copyright": record,
            },
        )
        log.warning("copyright_match", work=verdict.matches[0]["work_id"])
    elif verdict.outcome == "review":
        move(store, ctx.track_id, Move.HOLD, fields={"copyright": record})
        log.warning("copyright_review", work=verdict.matches[0]["work_id"])
    return StepResult(fields={"copyright": record}, outputs=outputs)


def _transcode(ctx: StepContext, bitrate: int) -> StepResult:
    out = ctx.workdir / f"{bitrate}.mp3"
    result = recipes.encode_rendition(
        ctx.artifact(NORMALISED_ARTIFACT),
        out,
        bitrate,
        ctx.track["loudness"]["output"]["true_peak_dbtp"],
        ctx.settings,
    )
    cover = COVER_ARTIFACT in ctx.track["outputs"]
    transcode.write_id3(
        out,
        ctx.track["metadata"]["tags"],
        ctx.artifact(COVER_ARTIFACT).read_bytes() if cover else None,
        loudness=LoudnessStats.from_record(result["loudness"]),
    )
    outputs = ctx.store([(rendition_artifact(bitrate), out, "audio/mpeg")])
    return StepResult(fields={("renditions", str(bitrate)): result}, outputs=outputs)


@step("transcode_128")
def transcode_128(ctx: StepContext) -> StepResult:
    """The 128 kbps MP3 rendition."""
    return _transcode(ctx, 128)


@step("transcode_192")
def transcode_192(ctx: StepContext) -> StepResult:
    """The 192 kbps MP3 rendition."""
    return _transcode(ctx, 192)


@step("transcode_320")
def transcode_320(ctx: StepContext) -> StepResult:
    """The 320 kbps MP3 rendition."""
    return _transcode(ctx, 320)


@step("stream_ladder")
def stream_ladder(ctx: StepContext) -> StepResult:
    """The HLS ladder (AAC-LC 160 and 96 kbps, Opus 96 kbps in CMAF segments), from one decode
    of the master, in this run's folder (a redelivery writes the same keys again, a reprocessing
    a new folder). Only the playlists enter the record, as they name the rest: in ``stream``,
    which each run replaces whole, so that no earlier run's playlist stays listed."""
    out = ctx.workdir / "hls"
    ladder = recipes.encode_ladder(
        ctx.artifact(NORMALISED_ARTIFACT),
        out,
        LoudnessStats.from_record(ctx.track["loudness"]["output"]),
        ctx.settings,
    )
    files = ladder.pop("files")
    folder = stream_folder(str(ctx.track.get("reprocessed_at") or ""))
    stored = ctx.store(
        [(f"{folder}/{f['path']}", out / f["path"], f["content_type"]) for f in files]
    )
    playlists = {
        path.removeprefix(f"{folder}/"): uri
        for path, uri in stored.items()
        if path.endswith(".m3u8")
    }
    return StepResult(fields={"stream": ladder | {"folder": folder, "playlists": playlists}})


# --- publication ------------------------------------------------------------------------------
@step("index_track")
def index_track(ctx: StepContext) -> StepResult:
    """Make the track findable by search, and protect it: it joins the copyright catalogue
    (indexed by background tasks, so publication does not wait for it)."""
    s = ctx.settings
    document = TrackDocument.from_track({**ctx.track, "published_at": ctx.track.get("queued_at")})
    open_search(s).upsert(document)
    catalogue = catalogue_store(s)
    work = catalogue.create(
        title=document.title,
        owner=ctx.track["owner"],
        status=WorkStatus.INDEXING,
        track_id=ctx.track_id,
        duration_s=document.duration_s,
        landmarks=ctx.track["copyright"]["landmarks"],
        sampling=s.track_index_sampling,
        # named at creation: a work that can match without quads would never load them
        quads_key=ctx.key(QUADS_ARTIFACT),
    )
    if work["status"] == WorkStatus.INDEXING and "chunks" not in work:
        hashes, _ = indexed_landmarks(work, ctx.artifact(FINGERPRINT_ARTIFACT).read_bytes())
        landmarks = ctx.key(FINGERPRINT_ARTIFACT)
        chunks = chunk_count(hashes)
        work = catalogue.update(work["work_id"], landmarks_key=landmarks, chunks=chunks) or work
        start_indexing(work, landmarks, chunks)
    return StepResult(
        fields={
            "search": {"indexed_at": now_iso(), "backend": s.search_backend},
            "catalogue": {"work_id": work["work_id"]},
        }
    )


@step("publish_feed")
def publish_feed(ctx: StepContext) -> StepResult:
    """Put the track in every follower's feed, one bounded page of followers per task."""
    pages = fan_out(ctx.track["owner"], feed_entry(ctx.track), lane_of(ctx.track))
    return StepResult(fields={"feed": {"pages": pages, "published_at": now_iso()}})


@step("notify_uploader")
def notify_uploader(ctx: StepContext) -> StepResult:
    """Email the uploader the outcome, once per outcome, within the account's send rate."""
    s = ctx.settings
    status = ctx.track["status"]
    outcome = str(status) if status in (Status.REJECTED, Status.FAILED) else "published"
    store = track_store(s)
    claim = ctx.track.get("notifications", {}).get(outcome, {})
    if claim.get("state") in ("sent", "suppressed"):
        return StepResult()
    if claim.get("owner") != ctx.task_id:  # no slot of ours yet: reserve one, then claim
        user = UserStore(aws.client("dynamodb", s), s.table("users")).ensure(ctx.track["owner"])
        if user.get("email_opt_out"):
            store.confirm_notification(
                ctx.track_id, outcome, {"state": "suppressed", "at": now_iso()}
            )
            return StepResult()
        if deliverable_address(user) is None:  # never mail an address nobody confirmed
            store.confirm_notification(
                ctx.track_id,
                outcome,
                {"state": "suppressed", "reason": "unverified", "at": now_iso()},
            )
            return StepResult()
        limiter = RateLimiter(
            aws.client("dynamodb", s), s.table("idempotency"), "ses", s.email_rate_per_s
        )
        wait = limiter.reserve(max_wait_s=s.retry_backoff_max_s)
        if wait is None:
            raise NotReady("the email send rate is booked up: trying again later")
        claim = store.claim_notification(
            ctx.track_id,
            outcome,
            owner=ctx.task_id,
            slot_at=time.time() + wait,
            lease_s=s.io_task_time_limit_s,
        )
        if claim.get("state") in ("sent", "suppressed"):
            return StepResult()
        if claim.get("owner") != ctx.task_id:
            raise NotReady("another worker is sending this email")
    delay = claim["slot_at"] - time.time()
    if delay > 1.0:
        raise WaitForSlot(delay)  # come back for the reserved slot instead of holding a worker
    time.sleep(max(0.0, delay))  # our slot: sending earlier would exceed the account's rate
    user = UserStore(aws.client("dynamodb", s), s.table("users")).ensure(ctx.track["owner"])
    # read again at sending: confirmed addresses only ever replace confirmed ones, so one is
    # still there; a profile that lost it meanwhile gets nothing
    address = deliverable_address(user)
    if address is None:
        store.confirm_notification(
            ctx.track_id, outcome, {"state": "suppressed", "reason": "unverified", "at": now_iso()}
        )
        return StepResult()
    email = compose(outcome, ctx.track, s.link_base)
    message_id = send_email(s, address, email)
    sent = {
        "state": "sent",
        "sent_at": now_iso(),
        "message_id": message_id,
        "to": address,
    }
    store.confirm_notification(ctx.track_id, outcome, sent)
    log.info("email_sent", outcome=outcome)
    return StepResult()
