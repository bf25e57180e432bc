"""Content-addressed blobs (sha256), in a local folder or at an fsspec URL.

Checkpoint parts and kept artifacts are stored here, each once. Writes are atomic (a
temporary file renamed into place locally, one PUT on object stores), reads are verified
against their digest, and `flor gc` finds garbage by listing: sizes and modification times
come from the listing, nothing is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flor.errors import CheckpointError

_HEX = frozenset("0123456789abcdef")


class _LocalFiles:
    """Blob files in a local folder, each written to a temporary file and renamed into place."""

    errors: tuple[type[BaseException], ...] = (OSError,)
    fix = "free disk space or make the directory writable"
    _TMP_PREFIX = ".tmp-"

    def __init__(self, root: Path) -> None:
        self.root = root

    def size(self, key: str) -> int | None:
        path = self.root / key
        return path.stat().st_size if path.is_file() else None

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self._TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, key: str, length: int | None = None) -> bytes:
        with open(self.root / key, "rb") as f:
            return f.read() if length is None else f.read(length)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def touch(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.root / key)

    @contextlib.contextmanager
    def lock(self, exclusive: bool, wait: bool = True) -> Iterator[None]:
        """A lock file in the folder: writers share it, `flor gc` takes it alone."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / _LOCK_FILE, "a+b") as f:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            try:
                fcntl.flock(f, mode if wait else mode | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CheckpointError(
                    f"a run is writing checkpoints under {self.root} right now: try again"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def stats(self) -> dict[str, tuple[int, float | None]]:
        """(bytes, modification time) of every file under the two-letter folders."""
        if not self.root.is_dir():
            return {}
        out: dict[str, tuple[int, float | None]] = {}
        for sub in self.root.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for f in sub.iterdir():
                try:
                    stat = f.stat()
                except FileNotFoundError:
                    continue  # deleted concurrently
                out[f"{sub.name}/{f.name}"] = (stat.st_size, stat.st_mtime)
        return out


class _RemoteFiles:
    """Blob files at an fsspec URL. One `pipe_file` per blob: object stores (s3, gs) make a
    PUT atomic; elsewhere a torn write is caught by `put`'s size check and `get`'s hash."""

    # Backends raise their own exception types (botocore, google.auth), not only OSError.
    errors: tuple[type[BaseException], ...] = (Exception,)
    fix = "check the URL and that this machine's credentials may write there"

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise CheckpointError(
                f"the checkpoint home {url} needs fsspec: pip install 'flor[remote]'"
            ) from None
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise CheckpointError(
                f"cannot open the checkpoint home {url}: {exc}; use a folder or a URL fsspec "
                "supports (file://, s3:// with s3fs, gs:// with gcsfs)"
            ) from None
        self.root = root.rstrip("/")

    def size(self, key: str) -> int | None:
        try:
            return int(self.fs.size(f"{self.root}/{key}"))
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = f"{self.root}/{key}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(path, data)

    def read(self, key: str, length: int | None = None) -> bytes:
        return bytes(self.fs.cat_file(f"{self.root}/{key}", start=0, end=length))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{self.root}/{key}")

    def touch(self, key: str) -> None:
        """Object stores cannot change a modification time: rewriting is their only touch."""
        with contextlib.suppress(NotImplementedError, FileNotFoundError):
            self.fs.touch(f"{self.root}/{key}", truncate=False)

    @contextlib.contextmanager
    def lock(self, exclusive: bool, wait: bool = True) -> Iterator[None]:
        """No lock spans machines: the grace period alone protects blobs being written."""
        yield

    def stats(self) -> dict[str, tuple[int, float | None]]:
        if not self.fs.exists(self.root):
            return {}
        found = self.fs.find(self.root, detail=True)
        start = len(self.root) + 1
        return {path[start:]: (int(info["size"]), _mtime(info)) for path, info in found.items()}


def _mtime(info: dict[str, Any]) -> float | None:
    """A listing's modification time, as each fsspec backend spells it."""
    for key in ("mtime", "LastModified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        timestamp = getattr(value, "timestamp", None)
        if callable(timestamp):
            return float(timestamp())
        if isinstance(value, str):
            from datetime import datetime

            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


_LOCK_FILE = ".lock"


def _digest_of(key: str) -> str | None:
    """The digest a file key `aa/bbbb...` stores, or None for any other file."""
    digest = key[:2] + key[3:]
    return digest if len(key) == 65 and key[2] == "/" and _HEX.issuperset(digest) else None


@dataclass
class Swept:
    """What a sweep removed (or would remove): blobs, stale temporary files, their bytes."""

    blobs: int = 0
    temp_files: int = 0
    bytes: int = 0


class BlobStore:
    """Content-addressed blobs under `location/aa/bbbb...` (sha256).

    `location` is a folder, or an fsspec URL (`s3://bucket/prefix`, `gs://...`, `file://...`)
    so that cluster workers which share no filesystem read what a run wrote; fsspec is
    imported only for URLs, which keeps recording to a folder light.
    """

    def __init__(self, location: Path | str) -> None:
        self.location = str(location)
        self._files = (
            _RemoteFiles(self.location) if "://" in self.location else _LocalFiles(Path(location))
        )

    @staticmethod
    def _key(digest: str) -> str:
        if len(digest) != 64 or not _HEX.issuperset(digest):
            raise CheckpointError(f"{digest!r} is not a sha256 hex digest.")
        return f"{digest[:2]}/{digest[2:]}"

    def put(self, data: bytes) -> tuple[str, int]:
        """Store `data` once; a crash leaves either the whole blob or none of it visible."""
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        try:
            if self._files.size(key) == len(data):
                self._files.touch(key)  # young again: `flor gc` spares it for its grace period
                return digest, len(data)
            self._files.write(key, data)
        except self._files.errors as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise CheckpointError(
                f"cannot write a checkpoint under {self.location}: {reason}; {self._files.fix}."
            ) from exc
        return digest, len(data)

    def get(self, digest: str) -> bytes:
        """The blob's bytes, verified against its digest."""
        data = self._read(digest)
        if hashlib.sha256(data).hexdigest() != digest:
            raise CheckpointError(
                f"checkpoint blob {digest} in {self.location} is corrupt (its hash does not match)."
            )
        return data

    def check_readable(self, digest: str) -> None:
        """Read one byte of a blob: proves access (a replay worker's credentials, its mounts)
        without fetching a whole model."""
        self._read(digest, 1)

    def _read(self, digest: str, length: int | None = None) -> bytes:
        key = self._key(digest)
        try:
            return self._files.read(key, length)
        except FileNotFoundError as exc:
            raise CheckpointError(
                f"checkpoint blob {digest} is missing from {self.location}."
            ) from exc
        except self._files.errors as exc:
            raise CheckpointError(
                f"cannot read checkpoint blob {digest} from {self.location}: {exc}"
            ) from exc

    def delete(self, digest: str) -> None:
        """Remove a blob if present (for gc); its directory stays, for concurrent writers."""
        self._files.delete(self._key(digest))

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while writing blobs and the rows that refer to them: `flor gc` waits."""
        return self._files.lock(exclusive=False)

    def collecting(self, wait: bool = True) -> contextlib.AbstractContextManager[None]:
        """Hold while collecting garbage: no writer is between a blob and its row."""
        return self._files.lock(exclusive=True, wait=wait)

    def garbage(self, referenced: set[str], older_than: float) -> list[tuple[str, int]]:
        """(file key, bytes) of blobs not in `referenced` and of temporary files left by
        interrupted writes, both last modified before `older_than` (a file without a
        modification time counts as old). Sizes come from the listing: nothing is read."""
        found = []
        for key, (size, mtime) in sorted(self._files.stats().items()):
            if mtime is not None and mtime >= older_than:
                continue
            digest = _digest_of(key)
            stale_temp = digest is None and key[3:].startswith(_LocalFiles._TMP_PREFIX)
            if stale_temp or (digest is not None and digest not in referenced):
                found.append((key, size))
        return found

    def remove(self, key: str) -> None:
        """Remove one file listed by `garbage`."""
        self._files.delete(key)

    def sweep(self, referenced: set[str], older_than: float, *, dry_run: bool) -> Swept:
        """Remove (unless `dry_run`) what `garbage` lists, and count it."""
        swept = Swept()
        for key, size in self.garbage(referenced, older_than):
            if not dry_run:
                self.remove(key)
            if _digest_of(key) is None:
                swept.temp_files += 1
            else:
                swept.blobs += 1
            swept.bytes += size
        return swept

    def _sizes(self) -> dict[str, int]:
        """Bytes per stored blob; temporary files of unfinished writes are not blobs."""
        out = {}
        for key, (size, _) in self._files.stats().items():
            digest = _digest_of(key)
            if digest is not None:
                out[digest] = size
        return out

    def digests(self) -> set[str]:
        """Every stored blob (temporary files of unfinished writes excluded)."""
        return set(self._sizes())

    def total_bytes(self) -> int:
        """Bytes held by stored blobs."""
        return sum(self._sizes().values())
