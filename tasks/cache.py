"""A worker's local copy of S3 objects, shared by its processes.

Several steps of one track read the same upload; on one host it is downloaded once, and what a
step stores is kept for the steps after it (the encodes read the normalised master). Entries are
named by bucket, key and ETag, so a changed object is a new entry; downloads land under a
temporary name and appear whole, under a lock that keeps two processes from fetching the same
object at once. The oldest entries go when the cache outgrows its budget.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ObjectCache"]

# A process looks over the whole cache each time it has added this fraction of the budget, not
# after every addition: a look reads every entry, and a host's cache holds tens of thousands
# (16 artwork sizes a track). The budget can be passed by this much for each process on the host.
_LOOK_EVERY = 1 / 32


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ObjectCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._added_unseen = max_bytes  # the first addition looks over what earlier runs left

    def _path(self, bucket: str, key: str, etag: str) -> Path:
        name = hashlib.sha256(f"{bucket}\0{key}\0{etag.strip(chr(34))}".encode()).hexdigest()
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

    def get(self, s3: Any, bucket: str, key: str, etag: str | None = None) -> Path:
        """A local path holding the object; downloaded unless already here."""
        if etag is None:
            etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
        path = self._path(bucket, key, etag)
        name = path.name
        if path.exists():
            os.utime(path)
            return path
        with _locked(self.root / f"{name}.lock"):
            if not path.exists():
                partial = self.root / f"{name}.{os.getpid()}.part"
                try:
                    s3.download_file(bucket, key, str(partial))
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
