"""Operations that steer tracks and works from outside a workflow: a reviewer's decision, a
work taken out of the catalogue, a deleted track. The API calls these; each is one conditional
write followed by the tasks it releases."""

from __future__ import annotations

from typing import Any

from trackflow.adapters import aws
from trackflow.adapters.search import open_search
from trackflow.adapters.state.dynamo import now_iso
from trackflow.domain.copyright import review_rejection
from trackflow.domain.keys import media_key
from trackflow.domain.track import lane_of
from trackflow.pipeline.flow import Move, allowed_from
from trackflow.settings import WorkerGroup, get_settings
from trackflow.tasks import webhooks
from trackflow.tasks.app import app, routed
from trackflow.tasks.catalogue import catalogue_store, start_indexing
from trackflow.tasks.feeds import fan_out, feed_entry
from trackflow.tasks.runtime import track_store
from trackflow.tasks.workflow import move

__all__ = ["approve", "delete_track", "reject", "remove_work"]


def approve(track_id: str, reviewer: str, note: str = "") -> dict[str, Any] | None:
    """Release a held track: renditions and publication run as if the check had passed."""
    review = {"decision": "approved", "by": reviewer, "at": now_iso(), "note": note}
    # the move releases it: the renditions start (after any check skipped while it was held)
    return move(track_store(), track_id, Move.APPROVE, fields={"review": review})


def reject(track_id: str, reviewer: str, note: str = "") -> dict[str, Any] | None:
    """Confirm the match: the track ends rejected and the uploader is told why."""
    store = track_store()
    held = store.get(track_id)
    if held is None or held["status"] not in allowed_from(Move.REVIEW_REJECT):
        return None
    matches = held.get("copyright", {}).get("matches", [])
    # the move tells the uploader why
    return move(
        store,
        track_id,
        Move.REVIEW_REJECT,
        fields={
            "error": {
                "code": "copyright_match",
                "step": "check_copyright",
                "message": review_rejection(matches, note),
            },
            "review": {"decision": "rejected", "by": reviewer, "at": now_iso(), "note": note},
        },
    )


def remove_work(work_id: str) -> dict[str, Any] | None:
    """Take a work out of the catalogue at once; its postings are deleted in the background."""
    catalogue = catalogue_store()
    work = catalogue.remove(work_id)
    if work and work.get("landmarks_key") and work.get("chunks"):
        start_indexing(work, work["landmarks_key"], work["chunks"], remove=True)
    return work


def delete_track(track: dict[str, Any]) -> None:
    """Search, feeds and the catalogue forget the track at once; its files and its record go
    by a background task."""
    track_id = track["track_id"]
    open_search(get_settings()).delete(track_id)
    work = catalogue_store().work_for_track(track_id)
    if work:
        remove_work(work["work_id"])
    if track.get("published_at"):
        fan_out(track["owner"], feed_entry(track), lane_of(track), remove=True)
    track_store().mark(track_id, deleted_at=now_iso())
    webhooks.emit_deleted(track)
    delete_track_files.delay(track_id)


@app.task(
    name=routed("trackflow.delete_track", WorkerGroup.IO),
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=8,
)
def delete_track_files(self: Any, track_id: str) -> None:
    """Delete every object of the track (original and artifacts), then its record."""
    settings = get_settings()
    store = track_store(settings)
    track = store.get(track_id)
    if track is None:
        return
    s3 = aws.client("s3", settings)
    prefix = media_key(track["owner"], track_id, "")
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.media_bucket, Prefix=prefix
    ):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=settings.media_bucket, Delete={"Objects": keys, "Quiet": True})
    # the uploads bucket is versioned: a delete by key alone would only hide the upload behind a
    # delete marker, so every version under the track's key goes, the pinned one and any other
    key = track["upload"]["key"]
    multipart = track["upload"].get("multipart")
    if multipart:  # parts still held of an upload never completed: not billed for a day more
        aws.abort_upload(settings, key, multipart["upload_id"])
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=settings.uploads_bucket, Prefix=key
    ):
        versions = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
            if v["Key"] == key
        ]
        if versions:
            s3.delete_objects(
                Bucket=settings.uploads_bucket, Delete={"Objects": versions, "Quiet": True}
            )
    store.delete(track_id)
