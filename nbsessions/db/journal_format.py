"""The bytes of a journal file: its header, its records and their checksums.

    {"nbsessions": 2, "format": "journal", "created_at": 1700000000.0}
    {"t":"runs","id":"<run_id>","g":"<session_id>","crc":123,"doc":{...}}
    {"t":"runs","id":"<run_id>","crc":456,"del":true}

A record's small head comes first (table, id, the group it is indexed under) and a CRC-32 covers the head and
the document's bytes, so opening a file checks and indexes every line without parsing any document; a document
is parsed when it is first read. Lines without ``crc`` (written by hand or another tool) are parsed in full.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zlib
from typing import Any

from nbsessions.errors import StorageError

FORMAT_VERSION = 2
"""Bumped only together with a named migration of older files (``MIGRATIONS``)."""

MIGRATIONS = {
    1: "history references: a run stores the history it sent as references to earlier runs "
       "(schema.RunOutput.to_dict(history_refs=True)). Format-1 runs hold full copies, which format 2 still "
       "reads as they are, so the migration rewrites the header only: on the first write to a format-1 file, "
       "the journal is compacted into a format-2 file before anything new is appended.",
}
"""Version -> what changed on the way to the next one; the journal applies them in order on first write."""


class BadLine(ValueError):
    pass


class LazyDoc:
    """A stored document not parsed yet: opening checks every line's checksum, parsing waits for first use."""

    __slots__ = ("body", "group")

    def __init__(self, body: bytes, group: str | None) -> None:
        self.body, self.group = body, group


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def record_line(name: str, doc_id: str, body: bytes | None, group: str | None) -> bytes:
    """One record: its small head first, then a CRC-32 of everything before and after it, then the document."""
    head = b'{"t":' + dumps(name) + b',"id":' + dumps(doc_id)
    if body is None:
        return head + b',"crc":%d,"del":true}\n' % zlib.crc32(head)
    if group is not None:
        head += b',"g":' + dumps(group)
    return head + b',"crc":%d,"doc":' % zlib.crc32(body, zlib.crc32(head)) + body + b"}\n"


# The head as record_line writes it when no string needs escaping (ids are uuids): matched without json.
_HEAD = re.compile(rb'(\{"t":"([^"\\]*)","id":"([^"\\]*)"(?:,"g":"([^"\\]*)")?),"crc":(\d+),')


def parse_record(raw: bytes) -> tuple[str, str, dict[str, Any] | LazyDoc | None]:
    """(table, id, document or None for a deletion); raises ``BadLine`` for anything else."""
    m = _HEAD.match(raw)
    if m is None:
        return _parse_slowly(raw)
    head, rest = m[1], raw[m.end():]
    try:
        name, doc_id, group = m[2].decode(), m[3].decode(), m[4].decode() if m[4] is not None else None
    except UnicodeDecodeError:
        raise BadLine("not UTF-8") from None
    if rest == b'"del":true}':
        body = None
    elif rest.startswith(b'"doc":{') and rest.endswith(b"}"):
        body = rest[6:-1]
    else:
        raise BadLine("neither a document nor a deletion")
    if int(m[5]) != (zlib.crc32(head) if body is None else zlib.crc32(body, zlib.crc32(head))):
        raise BadLine("checksum mismatch")
    return name, doc_id, None if body is None else LazyDoc(body, group)


def _parse_slowly(raw: bytes) -> tuple[str, str, dict[str, Any] | None]:
    """Records with escaped strings, or written by hand or another tool (these may omit ``crc``)."""
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadLine(f"not JSON ({exc})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("t"), str) or not isinstance(rec.get("id"), str):
        raise BadLine("not a record with string 't' and 'id'")
    doc = rec.get("doc")
    if not isinstance(doc, dict) and rec.get("del") is not True:
        raise BadLine("a record needs a 'doc' object or 'del': true")
    if "crc" in rec:  # ',"crc":' and ',"doc":' cannot occur inside the head's strings: their quotes are escaped
        head = raw[:raw.find(b',"crc":')]
        expected = zlib.crc32(head) if doc is None else zlib.crc32(raw[raw.find(b',"doc":') + 7:-1], zlib.crc32(head))
        if rec["crc"] != expected:
            raise BadLine("checksum mismatch")
    return rec["t"], rec["id"], doc if isinstance(doc, dict) else None


def parse_header(path: str, raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or "nbsessions" not in header:
        hint = " It looks like a plain TinyDB JSON file." if raw.lstrip().startswith(b"{") else ""
        raise StorageError(f"{path} is not an nbsessions database (its first line is not the header)."
                           f"{hint} Use another file name, or move that file away.")
    version = header["nbsessions"]
    if not isinstance(version, int) or version < 1:
        raise StorageError(f"{path} has an invalid format version {version!r} in its header.")
    if version > FORMAT_VERSION:
        raise StorageError(f"{path} was written by a newer nbsessions (format {version}; this version "
                           f"reads up to {FORMAT_VERSION}). Upgrade nbsessions to open it; it was left untouched.")
    return header


def header_line(fields: dict[str, Any]) -> bytes:
    extra = {k: v for k, v in fields.items() if k not in ("nbsessions", "format")}
    header = {"nbsessions": FORMAT_VERSION, "format": "journal", **extra}
    return (json.dumps(header) + "\n").encode()


def write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)


def fsync_dir(path: str) -> None:
    """Make a created or replaced file's name durable too, not only its bytes."""
    with contextlib.suppress(OSError):  # some filesystems (and Windows) cannot open a directory
        dfd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
