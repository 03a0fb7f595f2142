"""A worker's local copy of S3 objects, shared by its processes.

Several steps of one track read the same upload; on one host it is downloaded once, and what a
step stores is kept for the steps after it (the encodes read the normalised master). An entry
is named by bucket, key and the identity of the bytes it holds: the version id when the caller
pins one (an admitted upload), else the ETag. Its bytes are fetched by that identity (GetObject
with ``VersionId``, and ``If-Match`` on the ETag), never by key alone: an object replaced under
the same key between a HEAD and the download, or after admission, can never be stored under
another object's name. Downloads land under a temporary name and appear whole, under a lock
that keeps two processes from fetching the same object at once. The oldest entries go when the
cache outgrows its budget.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

__all__ = ["ObjectCache", "bare_etag", "quoted_etag"]

# A process looks over the whole cache each time it has added this fraction of the budget, not
# after every addition: a look reads every entry, and a host's cache holds tens of thousands
# (16 artwork sizes a track). The budget can be passed by this much for each process on the host.
_LOOK_EVERY = 1 / 32


# botocore retries a GetObject that fails before its body; a body cut off midway is read again
# from the start (each read is of the same bytes: the request names them).
_BODY_READS = 3
_BODY_ERRORS = (
    ResponseStreamingError,
    IncompleteReadError,
    ReadTimeoutError,
    ConnectionClosedError,
)
_CHUNK = 1 << 20


def _download(s3: Any, bucket: str, key: str, pinned: dict[str, str], target: Path) -> None:
    """Write the object that ``pinned`` (``VersionId``, ``IfMatch``) names to ``target``.

    One GetObject carries both conditions: boto3's ``download_file`` takes no ``IfMatch``, and a
    HEAD followed by a download by key would leave a window for another object to land."""
    for attempt in range(_BODY_READS):
        response = s3.get_object(Bucket=bucket, Key=key, **pinned)
        try:
            with target.open("wb") as out:
                for chunk in response["Body"].iter_chunks(_CHUNK):
                    out.write(chunk)
            return
        except _BODY_ERRORS:
            if attempt == _BODY_READS - 1:
                raise
        finally:
            response["Body"].close()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def bare_etag(etag: str) -> str:
    """An ETag without its quotes (S3 events carry it bare, HEAD and listings quoted)."""
    return etag.strip('"')


def quoted_etag(etag: str) -> str:
    """An ETag as ``If-Match`` takes it."""
    return f'"{bare_etag(etag)}"'


class ObjectCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._added_unseen = max_bytes  # the first addition looks over what earlier runs left

    def _path(self, bucket: str, key: str, etag: str, version_id: str | None = None) -> Path:
        # A version id and an ETag never name the same entry: the marker keeps them apart.
        identity = f"version\0{version_id}" if version_id else bare_etag(etag)
        name = hashlib.sha256(f"{bucket}\0{key}\0{identity}".encode()).hexdigest()
        return self.root / name

    def adopt(self, source: Path, bucket: str, key: str, etag: str) -> None:
        """Keep a file just stored as that object (a hard link: no copy), unless it is here."""
        path = self._path(bucket, key, etag)
        if path.exists():
            return
        partial = path.with_name(f"{path.name}.{os.getpid()}.part")
        partial.unlink(missing_ok=True)  # left by a process that died here
        try:
            os.link(source, partial)
        except OSError:
            return  # another file system: the object is downloaded when asked for
        os.replace(partial, path)
        self._added(path)

    def get(
        self,
        s3: Any,
        bucket: str,
        key: str,
        etag: str | None = None,
        *,
        version_id: str | None = None,
    ) -> Path:
        """A local path holding the object: exactly ``version_id`` if given (with ``etag`` as a
        second guard), else the object whose ETag is ``etag`` (the current one's if None).
        Downloaded unless already here; S3 answers 404 or 412 (a ClientError) when the object
        named is gone or is no longer those bytes."""
        if etag is None and version_id is None:
            etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
        path = self._path(bucket, key, etag or "", version_id)
        name = path.name
        if path.exists():
            os.utime(path)
            return path
        pinned: dict[str, str] = {}
        if version_id:
            pinned["VersionId"] = version_id
        if etag:
            pinned["IfMatch"] = quoted_etag(etag)
        with _locked(self.root / f"{name}.lock"):
            if not path.exists():
                partial = self.root / f"{name}.{os.getpid()}.part"
                try:
                    _download(s3, bucket, key, pinned, partial)
                    os.replace(partial, path)
                finally:
                    partial.unlink(missing_ok=True)
        self._added(path)
        return path

    def _added(self, path: Path) -> None:
        self._added_unseen += path.stat().st_size
        if self._added_unseen >= self.max_bytes * _LOOK_EVERY:
            self._added_unseen = 0
            self._evict(keep=path)

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used entries (but ``keep``) until the cache fits its budget."""
        entries = []
        with os.scandir(self.root) as listing:
            for entry in listing:
                if entry.name.endswith((".lock", ".part")) or entry.name == keep.name:
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                entries.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in entries) + keep.stat().st_size
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size
