"""Content digests of files and folders, with a stat cache so unchanged files are never
hashed twice.

A file's digest is the BLAKE3 hash of its bytes (about 2 GB/s on one core, memory-mapped).
A folder's digest is the BLAKE3 hash of its manifest: one line per entry, depth first in
name order, `relative/path NUL kind NUL size NUL digest`, where a symbolic link's digest
is the hash of its target text (links are not followed, so link loops cannot hang a walk)
and sockets, devices and pipes are skipped and counted.

The stat cache (`<store folder>/digests.db`, SQLite, local to the machine) maps (path,
size, mtime, ctime, inode) to a digest, as DVC's state database does. A file modified less
than `RACY_S` seconds before it was hashed is not cached: its mtime could repeat after a
second write in the same clock tick.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3

from flor.store import digest_cache

NOT_A_FILE = "not a regular file or folder (a socket, device or pipe): declare files"
RACY_S = 2.0
PROGRESS_EVERY_S = 2.0
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    """What the stat cache keys on; equal fingerprints mean unchanged content."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> Fingerprint:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(frozen=True)
class Content:
    """The digest of a file or folder, its total bytes and its number of files."""

    digest: str
    kind: str  # file | dir
    bytes: int
    files: int
    skipped: int = 0  # sockets, devices and pipes inside a folder
    stamp: str = ""  # a folder's files' stat fingerprints, hashed: any rewrite changes it


class Unreadable(Exception):
    """A declared path that cannot be hashed; the message says why and what to do."""

    status = "unreadable"


class Modified(Unreadable):
    """A file that changed while it was hashed: its digest would be of no real content."""

    status = "changed"

    def __init__(self, where: str = "") -> None:
        at = f" (at {where})" if where else ""
        super().__init__(
            f"was modified while flor hashed it{at}: declare inputs once they are complete"
        )


class StatCache:
    """(path, fingerprint) -> digest, in a small SQLite file beside the store."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, int, int, str]] = []
        self._lock = threading.RLock()  # the user's thread may hash a folder output too

    def _open(self) -> sqlite3.Connection | None:
        if self._conn is None:
            try:
                conn = digest_cache.connect(self.path)
            except sqlite3.Error:
                return None  # a cache we cannot open only costs time: hash instead
            self._conn = conn
        return self._conn

    def get(self, path: str, fp: Fingerprint) -> str | None:
        with self._lock:
            return self._get(storable(path), fp)

    def _get(self, path: str, fp: Fingerprint) -> str | None:
        conn = self._open()
        if conn is None:
            return None
        try:
            return digest_cache.lookup(conn, path, fp.size, fp.mtime_ns, fp.ctime_ns, fp.inode)
        except sqlite3.Error:
            return None

    def put(self, path: str, fp: Fingerprint, digest: str) -> None:
        if self.clock() - fp.mtime_ns / 1e9 < RACY_S:
            return
        with self._lock:
            row = (storable(path), fp.size, fp.mtime_ns, fp.ctime_ns, fp.inode, digest)
            self._pending.append(row)
            if len(self._pending) >= 1000:
                self.flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        conn = self._open()
        if conn is None or not self._pending:
            self._pending.clear()
            return
        with contextlib.suppress(sqlite3.Error):  # digests not cached are hashed again
            digest_cache.save(conn, self._pending)
        self._pending.clear()

    def close(self) -> None:
        with self._lock:
            self._flush()
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def storable(text: str) -> str:
    """`text` as the store can hold it: a file name's undecodable bytes (Linux allows any)
    become `\\xNN` escapes instead of failing to encode."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def unstored(text: str) -> str:
    """The file name `storable` made `text` from (its `\\xNN` escapes back to bytes)."""
    if "\\x" not in text:
        return text
    data = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes.fromhex(m[1].decode()), text.encode())
    return os.fsdecode(data)


def hash_file(path: str) -> str:
    """BLAKE3 of a file's bytes (memory-mapped; small files read directly)."""
    hasher = blake3.blake3()
    if os.path.getsize(path) >= _BLOCK:
        hasher.update_mmap(path)
    else:
        with open(path, "rb") as f:
            hasher.update(f.read())
    return hasher.hexdigest()


def hash_bytes(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def file_digest(path: str, st: os.stat_result, cache: StatCache | None) -> str:
    fp = Fingerprint.of(st)
    found = cache.get(path, fp) if cache else None
    if found is not None:
        return found
    digest = hash_file(path)
    if Fingerprint.of(os.stat(path)) != fp:  # a writer raced the hash: no such content
        raise Modified()
    if cache:
        cache.put(path, fp, digest)
    return digest


def content(
    path: str,
    cache: StatCache | None,
    progress: Callable[[int], None] | None = None,
    on_entry: Callable[[str, str, str, str], None] | None = None,
) -> Content:
    """The digest of a file or folder (folders streamed: memory stays flat for any size).

    `on_entry(relative path, kind, absolute path, digest)` sees every file, folder and
    symbolic link inside a folder (`keep=True` stores them)."""
    path = os.path.abspath(path)  # the stat cache is keyed by absolute paths
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return Content(file_digest(path, st, cache), "file", st.st_size, 1)
        if stat.S_ISDIR(st.st_mode):
            return _folder(path, cache, progress, on_entry)
    except OSError as exc:
        inside = exc.filename and os.fspath(exc.filename) != path  # a folder's entry
        where = f" at {os.path.relpath(os.fspath(exc.filename), path)}" if inside else ""
        raise Unreadable(f"{_reason(exc)}{where}: check the path and its permissions") from exc
    raise Unreadable(NOT_A_FILE)


def _folder(
    root: str,
    cache: StatCache | None,
    progress: Callable[[int], None] | None,
    on_entry: Callable[[str, str, str, str], None] | None,
) -> Content:
    hasher, stamps = blake3.blake3(), blake3.blake3()
    total = files = skipped = 0
    for rel, kind, size, digest, where, stamp in _walk(root, "", cache):
        if kind == "skip":
            skipped += 1
            continue
        hasher.update(f"{rel}\0{kind}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
        stamps.update(f"{rel}\0{stamp}\n".encode("utf-8", "surrogateescape"))
        if on_entry:
            on_entry(rel, kind, where, digest)
        if kind == "file":
            total += size
            files += 1
            if progress and files % 1000 == 0:
                progress(files)
    if cache:
        cache.flush()
    return Content(hasher.hexdigest(), "dir", total, files, skipped, stamps.hexdigest())


def _walk(
    root: str, rel: str, cache: StatCache | None
) -> Iterator[tuple[str, str, int, str, str, str]]:
    """(relative path, kind, size, digest, absolute path, a file's stat fingerprint)"""
    folder = os.path.join(root, rel) if rel else root
    with os.scandir(folder) as found:
        entries = sorted(found, key=lambda e: e.name)
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        if entry.is_symlink():
            target = os.readlink(entry.path)
            yield name, "link", 0, hash_bytes(os.fsencode(target)), entry.path, ""
        elif entry.is_dir(follow_symlinks=False):
            yield name, "dir", 0, "", entry.path, ""
            yield from _walk(root, name, cache)
        elif entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            try:
                hashed = file_digest(entry.path, st, cache)
            except Modified:
                raise Modified(name) from None
            fp = Fingerprint.of(st)
            stamp = f"{fp.size} {fp.mtime_ns} {fp.ctime_ns} {fp.inode}"
            yield name, "file", st.st_size, hashed, entry.path, stamp
        else:
            yield name, "skip", 0, "", entry.path, ""


def progress_printer(shown: str) -> Callable[[int], None]:
    """Prints `hashing PATH: N files` to stderr at most every PROGRESS_EVERY_S seconds."""
    last = [time.monotonic()]

    def report(files: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            print(f"flor: hashing {shown}: {files:,} files so far", file=sys.stderr)

    return report
