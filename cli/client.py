"""A small client of the trackflow API: what the CLI, the demo and the tests use to upload."""

from __future__ import annotations

import base64
import html
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

import httpx

from trackflow.cli.errors import ApiError
from trackflow.domain.track import TERMINAL

__all__ = ["ApiClient", "ApiError", "crc32_base64", "guess_content_type"]

# each audio type, and the file endings that carry it
_CONTENT_TYPES = {
    suffix: f"audio/{subtype}"
    for subtype, suffixes in (
        ("mpeg", (".mp3",)),
        ("flac", (".flac",)),
        ("wav", (".wav",)),
        ("aiff", (".aif", ".aiff")),
        ("ogg", (".ogg", ".oga")),
        ("opus", (".opus",)),
        ("mp4", (".m4a", ".mp4")),
        ("aac", (".aac",)),
    )
    for suffix in suffixes
}


def guess_content_type(path: Path) -> str:
    """A Content-Type for the presigned POST; the pipeline judges the bytes, not this."""
    return _CONTENT_TYPES.get(path.suffix.lower(), "audio/mpeg")


class _Counting:
    """A file whose reads report progress (httpx streams multipart bodies by reading)."""

    def __init__(self, handle: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self._handle = handle
        self._on_bytes = on_bytes
        self.name = getattr(handle, "name", "upload")

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._on_bytes(len(data))
        return data

    def seek(self, *args: Any) -> int:
        return self._handle.seek(*args)

    def tell(self) -> int:
        return self._handle.tell()


UPLOAD_ATTEMPTS = 5
READ_ATTEMPTS = 3
# Requests that change nothing: resent when the connection breaks under them (a kept-alive
# connection that the server closed just as it was reused resets the next request on it).
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


PART_WORKERS = 4  # parts in flight at once: enough to fill a link, few enough to hold in memory
PART_CHUNK = 256 * 1024  # progress is reported per chunk of a part sent


def crc32_base64(data: bytes) -> str:
    """A CRC32 as S3's x-amz-checksum-crc32 spells it: four big-endian bytes, base64."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _read_part(path: Path, number: int, part_size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek((number - 1) * part_size)
        return handle.read(part_size)


def _chunks(data: bytes, on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    for start in range(0, len(data), PART_CHUNK):
        chunk = data[start : start + PART_CHUNK]
        yield chunk
        on_bytes(len(chunk))


def _backoff(attempt: int) -> None:
    """Exponential backoff with full jitter before try ``attempt + 1``."""
    time.sleep(random.uniform(0, min(8.0, 0.5 * 2**attempt)))


def _with_retries(
    send: Callable[[Callable[[int], None]], httpx.Response],
    on_bytes: Callable[[int], None],
    *,
    done: Callable[[httpx.Response], bool],
    final: Callable[[int], bool],
    label: str = "",
) -> httpx.Response:
    """``send`` (given a byte counter) as S3 asks clients to retry: its 5xx answers and dropped
    connections up to ``UPLOAD_ATTEMPTS`` tries with exponential backoff and jitter, the bytes
    of a failed try taken back from the progress. An answer ``final`` judges final (a refusal:
    too large, wrong type, expired) ends it at once."""
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            on_bytes(n)

        try:
            response = send(count)
        except httpx.TransportError as error:
            status, problem = 503, f"connection failed: {error or type(error).__name__}"
        else:
            if done(response):
                return response
            status, problem = response.status_code, _s3_error(response.text)
            if final(status):
                raise ApiError(status, "upload_refused", f"{label}{problem}")
        on_bytes(-sent)
        if attempt == UPLOAD_ATTEMPTS:
            raise ApiError(status, "upload_failed", f"{label}{problem} ({attempt} attempts)")
        _backoff(attempt)
    raise AssertionError("unreachable")


def _s3_error(body: str) -> str:
    """S3's XML error as one line: "Code: Message"."""
    code = re.search(r"<Code>(.*?)</Code>", body)
    message = re.search(r"<Message>(.*?)</Message>", body)
    if not code:
        return body[:300]
    return f"{code.group(1)}: {html.unescape(message.group(1)) if message else ''}".strip()


class ApiClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=httpx.HTTPTransport(retries=3),  # connection attempts only: always safe
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                response = self._http.request(method, path, **kwargs)
                break
            except httpx.TransportError:
                if method.upper() not in _SAFE_METHODS or attempt == READ_ATTEMPTS:
                    raise
                _backoff(attempt)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text[:300]}
            raise ApiError(
                response.status_code, error.get("code", "error"), error.get("message", "")
            )
        return response.json() if response.content else None

    def create_upload(self, path: Path, content_type: str | None = None) -> dict[str, Any]:
        return self.request(
            "POST",
            "/v1/uploads",
            json={
                "filename": path.name,
                "content_type": content_type or guess_content_type(path),
                "size": path.stat().st_size,
            },
        )

    @staticmethod
    def send_file(
        upload: dict[str, Any], path: Path, on_bytes: Callable[[int], None] = lambda n: None
    ) -> None:
        """POST the file straight to S3 with the presigned form, streaming it from disk.

        S3 asks clients to retry its 5xx answers and dropped connections: up to
        ``UPLOAD_ATTEMPTS`` tries with exponential backoff and jitter (the progress goes back
        to zero for each). A refusal (4xx: too large, wrong type, expired) is final.
        """

        def post(count: Callable[[int], None]) -> httpx.Response:
            with path.open("rb") as handle:
                return httpx.post(
                    upload["url"],
                    data=upload["fields"],
                    files={
                        "file": (
                            path.name,
                            # httpx only reads it, as it would the file itself
                            cast(BinaryIO, _Counting(handle, count)),
                            upload["fields"].get("Content-Type"),
                        )
                    },
                    timeout=httpx.Timeout(60.0, write=None),
                )

        _with_retries(
            post,
            on_bytes,
            done=lambda response: response.status_code in (200, 201, 204),
            final=lambda status: status < 500,
        )

    # --- large files, in parts (the API's multipart upload) -----------------------------------
    def parts(self, track_id: str) -> dict[str, Any]:
        """What S3 holds of the track's multipart upload, and the part numbers missing."""
        return self.request("GET", f"/v1/uploads/{track_id}/parts")

    def part_urls(self, track_id: str, checksums: dict[int, str]) -> dict[int, str]:
        """Presigned URLs for these parts, each signing the part's CRC32."""
        answer = self.request(
            "POST",
            f"/v1/uploads/{track_id}/parts",
            json={"parts": [{"number": n, "checksum_crc32": c} for n, c in checksums.items()]},
        )
        return {part["number"]: part["url"] for part in answer["parts"]}

    def complete_upload(self, track_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return self.request("POST", f"/v1/uploads/{track_id}/complete", json={"parts": parts})

    def abort_upload(self, track_id: str) -> None:
        self.request("DELETE", f"/v1/uploads/{track_id}")

    def send_parts(
        self,
        track_id: str,
        path: Path,
        on_bytes: Callable[[int], None] = lambda n: None,
        *,
        workers: int = PART_WORKERS,
    ) -> dict[str, Any]:
        """Send the parts S3 does not hold yet, ``workers`` at once, and complete the upload.

        The parts already there count at once in ``on_bytes`` (a resumed upload starts where
        it stopped). Each part is retried as ``send_file`` retries a POST, with a fresh URL
        when S3 refused the old one (expired); a part that keeps failing stops the upload, and
        what was sent stays for the next try.
        """
        listing = self.parts(track_id)
        on_bytes(listing["uploaded_bytes"])
        part_size = listing["part_size"]
        done = {
            p["number"]: {key: value for key, value in p.items() if key != "size" and value}
            for p in listing["uploaded"]
        }
        lock = threading.Lock()

        def send(number: int) -> None:
            data = _read_part(path, number, part_size)
            checksum = crc32_base64(data)
            etag = self._put_part(track_id, number, data, checksum, on_bytes)
            with lock:
                done[number] = {"number": number, "etag": etag, "checksum_crc32": checksum}

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="part") as pool:
            # list() re-raises the first part that failed for good
            list(pool.map(send, listing["missing"]))
        return self.complete_upload(track_id, [done[n] for n in sorted(done)])

    def _put_part(
        self,
        track_id: str,
        number: int,
        data: bytes,
        checksum: str,
        on_bytes: Callable[[int], None],
    ) -> str:
        """PUT one part to its presigned URL; its ETag."""

        def put(count: Callable[[int], None]) -> httpx.Response:
            # a URL is asked for just before its part goes: URLs live minutes, uploads hours
            url = self.part_urls(track_id, {number: checksum})[number]
            return httpx.put(
                url,
                content=_chunks(data, count),
                headers={"Content-Length": str(len(data)), "x-amz-checksum-crc32": checksum},
                timeout=httpx.Timeout(60.0, write=None),
            )

        response = _with_retries(
            put,
            on_bytes,
            done=lambda response: response.status_code == 200 and "ETag" in response.headers,
            # 403: the URL expired (a fresh one is asked for); other 4xx are final
            final=lambda status: 400 <= status < 500 and status != 403,
            label=f"part {number}: ",
        )
        return response.headers["ETag"].strip('"')

    def track(self, track_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/tracks/{track_id}")

    def wait(
        self,
        track_id: str,
        *,
        timeout_s: float = 1800,
        on_update: Callable[[dict[str, Any]], None] = lambda t: None,
        interval_s: float = 0.5,
    ) -> dict[str, Any]:
        """Poll until the track reaches a terminal state (or the timeout passes)."""
        deadline = time.monotonic() + timeout_s
        while True:
            track = self.track(track_id)
            on_update(track)
            if track["status"] in TERMINAL or time.monotonic() > deadline:
                return track
            time.sleep(interval_s)
