"""The bytes of a journal file: its header, its records and their checksums.

    {"nbsessions": 3, "format": "journal", "created_at": 1700000000.0}
    {"t":"runs","id":"<run_id>","g":"<session_id>","crc":123,"doc":{...}}
    {"t":"runs","id":"<run_id>","crc":456,"del":true}
    {"t":"sessions","id":"<session_id>","crc":789,"upd":{"set":{"updated_at":1700000001.0}}}

A record's small head comes first (table, id, the group it is indexed under) and a CRC-32 covers the head and
the document's bytes, so opening a file checks and indexes every line without parsing any document; a document
is parsed when it is first read. An ``upd`` record changes some fields of a stored document (``Update``): a run
bumping its session's update time, or a state key set, appends that change, not the whole session again.
Lines without ``crc`` (written by hand or another tool) are parsed in full.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import re
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from nbsessions.db.journal_migrations import FORMAT_VERSION as FORMAT_VERSION  # derived from the migrations
from nbsessions.errors import CorruptDatabaseError, StorageError


class BadLine(ValueError):
    pass


class Update:
    """A change to some fields of a stored document, appended instead of the whole document.

    ``change`` holds up to four parts, applied in this order by ``apply_update``: ``set`` (field -> value),
    ``put`` (field -> {key: value}, replacing keys of a dict field), ``drop`` (field -> [key], removing keys)
    and ``merge`` (field -> a JSON merge patch, RFC 7386).
    """

    __slots__ = ("change",)

    def __init__(self, change: dict[str, Any]) -> None:
        self.change = change


def apply_update(doc: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """A new document: ``doc`` with ``change`` applied; ``doc`` is left as it was and shares nothing changed."""
    out = dict(doc)
    out.update(copy.deepcopy(change.get("set") or {}))
    for name, items in (change.get("put") or {}).items():
        out[name] = {**(out.get(name) or {}), **copy.deepcopy(items)}
    for name, keys in (change.get("drop") or {}).items():
        kept = dict(out.get(name) or {})
        for key in keys:
            kept.pop(key, None)
        out[name] = kept
    for name, patch in (change.get("merge") or {}).items():
        out[name] = merge_patch(out.get(name) or {}, patch)
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, a ``None`` value deletes its key; returns a new value."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


class OpenFile:
    """A descriptor of one journal file, closed when nothing refers to it any more.

    Every ``LazyDoc`` holds the ``OpenFile`` its offset belongs to: after a compaction (here or in another
    process) replaced the file, documents found before it — in a TinyDB snapshot, say — still read their bytes
    from the file they were found in, never from the same offset of the new one.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            self.close()


class LazyDoc:
    """A stored document not read yet: where its body is (``src``, ``offset``, ``length``) and its group.

    Opening checks every line's checksum and keeps only this; the body is read from the file when used.
    ``memo`` holds a small value derived from the document (see ``JournalStorage.memo``), valid for this version.
    """

    __slots__ = ("offset", "length", "group", "memo", "src")

    def __init__(self, offset: int, length: int, group: str | None) -> None:
        self.offset, self.length, self.group = offset, length, group
        self.memo: Any = None
        self.src: OpenFile | None = None

    def placed(self, at: int, src: OpenFile) -> LazyDoc:
        """The body's place in ``src``: its offset was counted from the start of a line that begins at ``at``."""
        self.offset += at
        self.src = src
        return self


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def body_at(line: bytes, body: bytes, group: str | None) -> LazyDoc:
    """Where ``body`` is within the ``record_line`` made of it (the line ends with ``}\\n``)."""
    return LazyDoc(len(line) - len(body) - 2, len(body), group)


def record_line(name: str, doc_id: str, body: bytes | None, group: str | None, kind: bytes = b"doc") -> bytes:
    """One record: its small head first, then a CRC-32 of everything before and after it, then the document
    (``kind`` ``upd``: the change of an ``Update``)."""
    head = b'{"t":' + dumps(name) + b',"id":' + dumps(doc_id)
    if body is None:
        return head + b',"crc":%d,"del":true}\n' % zlib.crc32(head)
    if group is not None:
        head += b',"g":' + dumps(group)
    return head + b',"crc":%d,"%s":' % (zlib.crc32(body, zlib.crc32(head)), kind) + body + b"}\n"


# The head as record_line writes it when no string needs escaping (ids are uuids): matched without json.
_HEAD = re.compile(rb'(\{"t":"([^"\\]*)","id":"([^"\\]*)"(?:,"g":"([^"\\]*)")?),"crc":(\d+),')


def parse_record(raw: bytes) -> tuple[str, str, dict[str, Any] | LazyDoc | Update | None]:
    """(table, id, document, ``Update``, or None for a deletion); raises ``BadLine`` for anything else.

    A document comes back as a ``LazyDoc`` whose offset counts from the start of ``raw``.
    """
    m = _HEAD.match(raw)
    if m is None:
        return _parse_slowly(raw)
    head, end = m[1], m.end()
    try:
        name, doc_id, group = m[2].decode(), m[3].decode(), m[4].decode() if m[4] is not None else None
    except UnicodeDecodeError:
        raise BadLine("not UTF-8") from None
    update = raw.startswith(b'"upd":{', end)
    if (update or raw.startswith(b'"doc":{', end)) and raw.endswith(b"}"):
        body = memoryview(raw)[end + 6:-1]  # no copy: only its checksum is needed now
    elif raw[end:] == b'"del":true}':
        body = None
    else:
        raise BadLine("neither a document, an update nor a deletion")
    if int(m[5]) != (zlib.crc32(head) if body is None else zlib.crc32(body, zlib.crc32(head))):
        raise BadLine("checksum mismatch")
    if update:
        return name, doc_id, _update_of(bytes(body))
    return name, doc_id, None if body is None else LazyDoc(end + 6, len(body), group)


def _update_of(body: bytes | Any) -> Update:
    try:
        change = json.loads(body) if isinstance(body, bytes) else body
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadLine(f"an update that is not JSON ({exc})") from None
    if not isinstance(change, dict):
        raise BadLine("an update that is not an object")
    return Update(change)


def _parse_slowly(raw: bytes) -> tuple[str, str, dict[str, Any] | Update | None]:
    """Records with escaped strings, or written by hand or another tool (these may omit ``crc``)."""
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadLine(f"not JSON ({exc})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("t"), str) or not isinstance(rec.get("id"), str):
        raise BadLine("not a record with string 't' and 'id'")
    kind = "upd" if "upd" in rec else "doc"
    doc = rec.get(kind)
    if not isinstance(doc, dict) and rec.get("del") is not True:
        raise BadLine("a record needs a 'doc' or 'upd' object or 'del': true")
    if "crc" in rec:  # ',"crc":' and ',"doc":' cannot occur inside the head's strings: their quotes are escaped
        head = raw[:raw.find(b',"crc":')]
        at = raw.find(b',"%s":' % kind.encode()) + 7
        expected = zlib.crc32(head) if doc is None else zlib.crc32(raw[at:-1], zlib.crc32(head))
        if rec["crc"] != expected:
            raise BadLine("checksum mismatch")
    if kind == "upd" and isinstance(doc, dict):
        return rec["t"], rec["id"], _update_of(doc)
    return rec["t"], rec["id"], doc if isinstance(doc, dict) else None


def open_error(path: str, exc: OSError, read_only: bool = False) -> str:
    """Why a database file cannot be opened, in one line that names it and says what to do."""
    if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
        return f"{path} is a directory, not a database file: give the path of a file"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        where = path if os.path.exists(path) else os.path.dirname(path)
        verb = "read" if read_only else "write to"
        return f"cannot {verb} {path}: {where} is read-only ({exc.strerror}); pick a writable path or fix it"
    if exc.errno == errno.ENOENT and read_only:
        return f"{path}: no such database file"
    if exc.errno == errno.ELOOP:
        return f"{path} is a symlink loop (links that lead back to themselves), not a database file"
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return f"cannot create {path}: a part of its folder is a file, not a folder"
    if exc.errno == errno.ENOSPC:
        return f"cannot create {path}: no space left on the device"
    return f"cannot open {path}: {exc.strerror or exc}"


def encode_record(path: str, name: str, doc_id: str, doc: dict[str, Any] | LazyDoc | Update | None,
                  group_field: str | None,
                  read_body: Callable[[LazyDoc], bytes]) -> tuple[bytes, LazyDoc | None]:
    """A record line, and where its body is within the line (``LazyDoc.placed`` places it in the file)."""
    if not isinstance(doc_id, str):
        raise TypeError(f"document ids are strings, not {type(doc_id).__name__} ({doc_id!r})")
    if doc is None:
        return record_line(name, doc_id, None, None), None
    if isinstance(doc, Update):
        try:
            return record_line(name, doc_id, dumps(doc.change), None, b"upd"), None
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise StorageError(f"cannot store a change of {name}/{doc_id} in {path}: {exc}") from exc
    if isinstance(doc, LazyDoc):
        body, group = read_body(doc), doc.group
    else:
        group = doc.get(group_field) if group_field else None
        group = group if isinstance(group, str) else None
        try:
            body = dumps(doc)
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise StorageError(f"cannot store {name}/{doc_id} in {path}: {exc}") from exc
    line = record_line(name, doc_id, body, group)
    return line, body_at(line, body, group)


def written_update(line: bytes) -> Update:
    """The change of an ``upd`` record line as its bytes say, so the caller's dicts stay theirs."""
    return Update(json.loads(line[line.index(b',"upd":') + 7:-2]))


def parse_body(path: str, name: str, doc_id: str, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):  # its checksum matched, so only a writer bug gets here
        raise CorruptDatabaseError(f"{path}: the stored {name} document {doc_id!r} is not a JSON object")
    return doc


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


def create_journal(path: str) -> None:
    """A new file holding only the header, created 0600 and durable; an existing file is left alone."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        write_all(fd, header_line({"created_at": time.time()}))
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path)


Moved = list[tuple[dict[str, Any], str, LazyDoc]]
"""(table, id, the document's place in the new file) for each document compaction moved."""


def write_snapshot(path: str, *args: Any) -> tuple[OpenFile, int, Moved]:
    """``_write_snapshot``; a failure (a full disk) is one ``StorageError`` naming the file, left as it was."""
    try:
        return _write_snapshot(path, *args)
    except OSError as exc:
        raise StorageError(f"could not compact {path}: {exc.strerror or exc}; the database was left as it was") \
            from None


def _write_snapshot(path: str, mode: int, header: bytes, tables: dict[str, dict[str, Any]],
                    encode: Callable[[str, str, Any], tuple[bytes, LazyDoc | None]]) -> tuple[OpenFile, int, Moved]:
    """Compaction's file work: the live documents into ``<path>.compact.tmp``, fsync'd, then ``os.replace``.

    Returns the new file (open for appends), its size, and where each not-yet-parsed document now is; the
    caller swaps those in only after this returns, since until the replace the old offsets are the valid ones.
    A failure leaves the journal as it was and removes the temp file.
    """
    tmp = path + ".compact.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a process killed while compacting; the caller holds the lock, so nobody owns it
    new = OpenFile(os.open(tmp, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600))
    assert new.fd is not None
    moved: Moved = []
    try:
        os.fchmod(new.fd, mode)
        chunk, size = [header], len(header)
        for name, docs in tables.items():
            for doc_id, doc in docs.items():
                line, lazy = encode(name, doc_id, doc)
                if not isinstance(doc, dict) and lazy is not None:  # parsed ones stay parsed
                    lazy.memo = getattr(doc, "memo", None)  # a document with changes pending has none
                    moved.append((docs, doc_id, lazy.placed(size, new)))
                chunk.append(line)
                size += len(line)
                if len(chunk) >= 1000:
                    write_all(new.fd, b"".join(chunk))
                    chunk.clear()
        write_all(new.fd, b"".join(chunk))
        os.fsync(new.fd)
        os.replace(tmp, path)
    except BaseException:
        new.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path)
    return new, size, moved


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
