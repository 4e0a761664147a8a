"""Checkpoint files: msgpack, written atomically, read with limits and checks.

A checkpoint is three msgpack objects in a row:

1. a header map: ``format``, ``version``, ``riverguard`` (version), ``created``
   (UTC), ``rules`` (a fingerprint of each rule's detector and parameters),
   ``taken`` (``[measurement, field name]`` pairs: added-field names the
   user's own fields hold with another type), ``series`` (the record count);
2. the body, a byte string holding one msgpack array of records
   ``[series key, detector name, rule fingerprint, samples seen, latest
   timestamp (ns or nil), anomalies, detector state, seen at (ns)]`` (version
   2; version 1's records have no "seen at": :func:`read` gives them nil);
3. a trailer map with the body's SHA-256 and the header's (``header_sha256``;
   checkpoints written before it have none, and are read without it), so
   truncation and corruption are caught before anything is decoded.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import mmap
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack

__all__ = ["FORMAT", "VERSION", "Checkpoint", "CheckpointError", "identity", "orphans", "read", "set_aside", "temp_path",
           "write"]

FORMAT = "riverguard-state"
VERSION = 2
#: The versions :func:`read` reads (1: records without "seen at").
_READS = (1, 2)

_HEADER_LIMITS = dict(max_str_len=1 << 16, max_bin_len=1 << 16, max_array_len=1 << 16, max_map_len=1 << 16, max_ext_len=0)
_BODY_LIMITS = dict(
    max_str_len=1 << 20,
    max_bin_len=1 << 20,
    max_array_len=1 << 26,
    max_map_len=1 << 20,
    max_ext_len=0,
)
_MAX_FILE = 1 << 34


class CheckpointError(Exception):
    """A checkpoint file that cannot be used; the message says what is wrong."""


class Checkpoint:
    """A checkpoint read from disk: its header and its (not yet decoded) records."""

    def __init__(self, header: dict[str, Any], records: list[list[Any]], size: int) -> None:
        self.header = header
        self.records = records
        self.size = size
        #: The file read, as :func:`identity` tells it (set by :func:`read`).
        self.identity: tuple[int, ...] | None = None


def identity(st: os.stat_result) -> tuple[int, ...]:
    """What tells a checkpoint file from the one a write put there since (a new file renamed over it, or one
    written in place): its device, inode, size, modification and change times (ns)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bin_header(size: int) -> bytes:
    """The msgpack bin header for ``size`` bytes (what ``packb`` would write before them)."""
    if size < 1 << 8:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xc5" + size.to_bytes(2, "big")
    if size < 1 << 32:
        return b"\xc6" + size.to_bytes(4, "big")
    raise ValueError(f"checkpoint body too large ({size} bytes)")


def temp_path(path: Path, pid: int | None = None) -> Path:
    """Where :func:`write` puts the checkpoint ``path`` before renaming it: ``.<name>.tmp-<pid>`` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid() if pid is None else pid}")


def orphans(path: Path) -> list[Path]:
    """The temporary files of checkpoint ``path`` (:func:`temp_path`, any PID) beside it: regular files only.

    A process killed while it wrote a checkpoint leaves one; only the holder of the lock writes them, so at
    start-up, once the lock is taken, every one is an orphan.
    """
    pattern = re.compile(re.escape(f".{path.name}.tmp-") + r"[0-9]+")
    found = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for name in names:
        if pattern.fullmatch(name):
            candidate = path.parent / name
            try:
                if stat.S_ISREG(os.lstat(candidate).st_mode):
                    found.append(candidate)
            except OSError:
                continue
    return sorted(found)


#: How much of a checkpoint's body :func:`write` packs before it writes that out: what writing one costs in
#: memory beyond the records it packs (at least 64 KiB: see :func:`write`).
CHUNK = 1 << 21


def write(path: Path, header: dict[str, Any], records: Iterable[list[Any]], count: int | None = None,
          chunk: int = CHUNK) -> int:
    """Write a checkpoint atomically (temporary file, fsync, rename, fsync folder); return its size.

    ``records`` may be a generator of ``count`` records: each is packed as it comes, so the
    records never all exist at once. Nor does the body: it is written out and hashed ``chunk`` bytes
    at a time as it is packed (:func:`_write_body`).
    """
    if chunk < 1 << 16:
        raise ValueError(f"a chunk of {chunk} bytes: 65536 at least")
    if count is None:
        records = list(records)
        count = len(records)
    head = msgpack.packb({"format": FORMAT, "version": VERSION, "created": _now(), **header, "series": count},
                         use_bin_type=True)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        body, digest = _write_body(fd, head, records, count, chunk)
        trailer = msgpack.packb({"sha256": digest, "header_sha256": hashlib.sha256(head).hexdigest()},
                                use_bin_type=True)
        _write_all(fd, trailer)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return len(head) + len(_bin_header(body)) + body + len(trailer)


def _write_body(fd: int, head: bytes, records: Iterable[list[Any]], count: int, chunk: int) -> tuple[int, str]:
    """Write ``head``, then the ``count`` records packed as one msgpack bin (:func:`write`), to ``fd``; return
    the body's length and its SHA-256 (hex).

    The records are packed into the packer's own buffer, written out (and hashed) each time it holds
    ``chunk`` bytes, and the buffer reused. A body that never fills one is written at the end with the
    smallest bin header, as ``packb`` would; a longer one has a bin 32 header (0xC6) whose length is
    filled in once known: the same bytes, since a body of 64 KiB or more (``chunk`` is never less) takes
    bin 32 anyway.
    """
    digest = hashlib.sha256()
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    packer.pack_array_header(count)
    written = packed = 0
    for record in records:
        packer.pack(record)
        packed += 1
        with packer.getbuffer() as view:
            if len(view) < chunk:
                continue
            if not written:
                _write_all(fd, head + b"\xc6\0\0\0\0")  # (the length: below, once known)
            digest.update(view)
            _write_all(fd, view)
            written += len(view)
        packer.reset()
    if packed != count:
        raise ValueError(f"{packed} records for a count of {count}")
    with packer.getbuffer() as view:
        digest.update(view)
        if written:
            _write_all(fd, view)
            written += len(view)
            length = _bin_header(written)
            if os.pwrite(fd, length, len(head)) != len(length):
                raise OSError(errno.EIO, "short write of the checkpoint body's length")
        else:
            written = len(view)
            _write_all(fd, head + _bin_header(written))
            _write_all(fd, view)
    return written, digest.hexdigest()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until all of ``data`` is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read(path: Path) -> Checkpoint:
    """Read and check a checkpoint; raise FileNotFoundError or :class:`CheckpointError`.

    Anything but a regular file (a device, a FIFO) is refused before it is opened, and opened without
    waiting for a writer, so it can neither hang the caller nor be read from.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise CheckpointError("not a regular file")
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY), "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError("not a regular file")
        size = st.st_size
        if size == 0:
            raise CheckpointError("the file is empty")
        if size > _MAX_FILE:
            raise CheckpointError(f"the file is too large ({size} bytes)")
        # Mapped, not read into a new 200 MB object; the records are decoded out of it.
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        checkpoint = _parse(data, size)
    finally:
        data.close()
    checkpoint.identity = identity(st)
    return checkpoint


def _reason(err: Exception, otherwise: str) -> str:
    """msgpack's error as the end of a message: no capital, no full stop (``otherwise`` when it says nothing).

    >>> _reason(ValueError("No more data to unpack."), "truncated"), _reason(ValueError(), "truncated")
    ('no more data to unpack', 'truncated')
    """
    text = str(err).strip().rstrip(".")
    if text[:1].isupper() and text[1:2].islower():  # (not an acronym: "EOF")
        text = text[0].lower() + text[1:]
    return text or otherwise


#: How every header :func:`write` makes begins, after the map's own first bytes.
_FORMAT_MARK = msgpack.packb("format") + msgpack.packb(FORMAT)


def _parse(data: mmap.mmap, size: int) -> Checkpoint:
    # The header is small: read it from the first bytes only.
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=1 << 21, **_HEADER_LIMITS)
    unpacker.feed(data[: 1 << 20])
    try:
        header = next(unpacker)
    except (StopIteration, ValueError, msgpack.UnpackException, msgpack.ExtraData) as err:
        # A header that starts as riverguard writes it (the format first) is one of its checkpoints, cut short
        what = "a damaged riverguard checkpoint" if _FORMAT_MARK in data[:64] else "not a riverguard checkpoint"
        raise CheckpointError(f"{what} (unreadable header: {_reason(err, 'truncated')})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError("not a riverguard checkpoint (foreign format)")
    if header.get("version") not in _READS:
        raise CheckpointError(f"unsupported checkpoint version {header.get('version')!r} (this riverguard reads "
                              f"{' and '.join(map(str, _READS))})")
    # The body is a msgpack bin: used in place (a view), never copied.
    pos = unpacker.tell()
    widths = {0xC4: 1, 0xC5: 2, 0xC6: 4}
    width = widths.get(data[pos]) if pos < size else None
    if width is None:
        raise CheckpointError("the file is truncated or corrupt (no body after the header)")
    start = pos + 1 + width
    end = start + int.from_bytes(data[pos + 1 : start], "big")
    if end > size:
        raise CheckpointError("the file is truncated or corrupt (body cut short)")
    try:
        trailer = msgpack.unpackb(data[end:], raw=False, **_HEADER_LIMITS)
    except msgpack.ExtraData:
        raise CheckpointError("the file is corrupt (data after the end)") from None
    except (ValueError, msgpack.UnpackException) as err:
        raise CheckpointError(f"the file is truncated or corrupt ({_reason(err, 'missing trailer')})") from None
    if not isinstance(trailer, dict):
        raise CheckpointError("the file is corrupt (unexpected layout)")
    if "header_sha256" in trailer and trailer["header_sha256"] != hashlib.sha256(data[:pos]).hexdigest():
        raise CheckpointError("the file is corrupt (header checksum mismatch)")
    with memoryview(data) as view, view[start:end] as body:  # released before the map is closed
        if trailer.get("sha256") != hashlib.sha256(body).hexdigest():
            raise CheckpointError("the file is corrupt (checksum mismatch)")
        try:
            records = msgpack.unpackb(body, raw=False, strict_map_key=False, **_BODY_LIMITS)
        except (ValueError, msgpack.UnpackException, TypeError) as err:
            raise CheckpointError(f"the file is corrupt (body: {_reason(err, 'unreadable')})") from None
    if not isinstance(records, list) or len(records) != header.get("series"):
        raise CheckpointError("the file is corrupt (record count does not match the header)")
    for record in records:
        if type(record) is not list or len(record) not in (7, 8):
            raise CheckpointError("the file is corrupt (malformed series record)")
        if len(record) == 7:
            record.append(None)  # (version 1: when it was seen is not known)
        key, name, fingerprint, seen, last, anomalies, _state, seen_at = record
        if (
            type(key) is not bytes
            or type(name) is not str
            or type(fingerprint) is not str
            or type(seen) is not int
            or (last is not None and type(last) is not int)
            or (seen_at is not None and (type(seen_at) is not int or not -(1 << 63) <= seen_at < 1 << 63))
            or type(anomalies) is not int
            or not 0 <= seen < 1 << 63
            or not 0 <= anomalies < 1 << 63
        ):
            raise CheckpointError("the file is corrupt (malformed series record)")
    return Checkpoint(header, records, size)


def set_aside(path: Path) -> Path:
    """Rename an unusable checkpoint to ``<name>.corrupt-<UTC time>``; return the new path."""
    if path.is_dir():  # a folder is never renamed
        raise IsADirectoryError(f"{path} is a folder")
    if not path.is_symlink() and not stat.S_ISREG(os.stat(path).st_mode):  # nor a device or a FIFO
        raise OSError(f"{path} is not a regular file")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target
