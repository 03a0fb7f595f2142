"""Where every object lives in S3: upload keys that carry their owner and track, and
deterministic keys for every artifact, so a step that runs twice writes the same objects."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "NORMALISED_ARTIFACT",
    "PEAKS_ARTIFACT",
    "QUADS_ARTIFACT",
    "STREAM_FOLDER",
    "STREAM_MASTER",
    "UploadKey",
    "catalogue_key",
    "catalogue_landmarks_key",
    "catalogue_quads_key",
    "media_key",
    "parse_catalogue_key",
    "parse_upload_key",
    "quad_snapshot_key",
    "rendition_artifact",
    "safe_filename",
    "stream_folder",
    "upload_key",
]

USER_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
TRACK_ID = re.compile(r"^[0-9a-f]{32}$")
WORK_ID = re.compile(r"^w[0-9]{8}$")
# Reference recordings for the copyright catalogue upload beside the tracks, in a folder no
# user name can take (user names never start with "_").
CATALOGUE_FOLDER = "_catalogue"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
MAX_FILENAME_BYTES = 200


def safe_filename(name: str) -> str:
    """The uploaded file's name, fit for a key: NFC, no directories or control characters."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("", name).strip().strip(".") or "upload"
    encoded = name.encode("utf-8")[:MAX_FILENAME_BYTES]
    return encoded.decode("utf-8", "ignore") or "upload"


def upload_key(prefix: str, owner: str, track_id: str, filename: str) -> str:
    return f"{prefix}{owner}/{track_id}/{safe_filename(filename)}"


@dataclass(frozen=True)
class UploadKey:
    owner: str
    track_id: str
    filename: str


def parse_upload_key(key: str, prefix: str) -> UploadKey | None:
    """The owner and track an upload key names, or None for a key we never issued."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) != 3:
        return None
    owner, track_id, filename = parts
    if not USER_ID.match(owner) or not TRACK_ID.match(track_id) or not filename:
        return None
    return UploadKey(owner, track_id, filename)


def catalogue_key(prefix: str, work_id: str, filename: str) -> str:
    return f"{prefix}{CATALOGUE_FOLDER}/{work_id}/{safe_filename(filename)}"


def parse_catalogue_key(key: str, prefix: str) -> str | None:
    """The work a catalogue upload key names, or None."""
    parts = key[len(prefix) :].split("/") if key.startswith(prefix) else []
    if len(parts) == 3 and parts[0] == CATALOGUE_FOLDER and WORK_ID.match(parts[1]) and parts[2]:
        return parts[1]
    return None


def catalogue_landmarks_key(work_id: str) -> str:
    """Where a reference work's landmarks live in the media bucket."""
    return f"catalogue/{work_id}/landmarks.npz"


def catalogue_quads_key(work_id: str) -> str:
    """Where a reference work's quads and verification peaks live in the media bucket."""
    return f"catalogue/{work_id}/quads.npz"


def quad_snapshot_key(generation: int) -> str:
    """The quad index's snapshot of one generation (each merges the last and the works since)."""
    return f"catalogue/quad-index/{generation:08d}.npz"


# Artifacts of a track that more than one part reads (the steps write them; the API serves them,
# or the catalogue's tasks read them)
PEAKS_ARTIFACT = "waveform/peaks.json"
NORMALISED_ARTIFACT = "audio/normalised.flac"
QUADS_ARTIFACT = "fingerprint/quads.npz"  # the quads a published track joins the catalogue with


def rendition_artifact(bitrate_kbps: int) -> str:
    return f"audio/{bitrate_kbps}.mp3"


# The HLS ladder: a master playlist, and each variant's playlist, init segment and segments in
# a folder of its own. Only the playlists are recorded; they name the segments.
STREAM_FOLDER = "hls"
STREAM_MASTER = "master.m3u8"


def stream_folder(generation: str) -> str:
    """The ladder's folder for one run of the workflow (``generation``: when the track was last
    reprocessed, empty before). A reprocessed track's ladder goes to a new folder: CloudFront
    keeps segments cached under their keys, and must never mix two runs' segments."""
    return f"{STREAM_FOLDER}/{hashlib.sha256(generation.encode()).hexdigest()[:12]}"


def media_key(owner: str, track_id: str, artifact: str) -> str:
    """Key of one artifact of a track in the media bucket, e.g. ``audio/128.mp3``."""
    return f"tracks/{owner}/{track_id}/{artifact}"
