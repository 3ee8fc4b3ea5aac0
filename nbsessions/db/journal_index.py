"""What a journal keeps in memory: where each live document is, and per-table indexes by one field.

Document bodies stay in the file: a ``LazyDoc`` is the offset and length of a body, so opening a large file costs
memory in proportion to its number of documents, not its size. Kept apart from ``journal`` so the file logic
(locking, tailing, compaction) and the bookkeeping of documents can each be read on their own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any, TypeVar

from nbsessions.db.journal_format import LazyDoc, Update, apply_update


class Pending:
    """A stored document not read yet (``base``) with changes appended after it, applied when it is read.

    Immutable, chained one change per link, so recording a change costs O(1) and a snapshot holding an older
    link never sees later changes.
    """

    __slots__ = ("base", "change")

    def __init__(self, base: LazyDoc | Pending, change: dict[str, Any]) -> None:
        self.base, self.change = base, change


Doc = dict[str, Any] | LazyDoc | Pending
Parse = Callable[[str, str, LazyDoc], dict[str, Any]]
T = TypeVar("T")


class JournalIndex:
    """Live documents by table in insertion order, and ``group_by`` indexes (e.g. runs by ``session_id``).

    Grouped tables (runs) hold only ``LazyDoc``s: their documents are parsed afresh on each read, never kept.
    Other tables (sessions, settings) keep a document parsed once read, since they are listed as a whole.
    """

    def __init__(self, group_by: Mapping[str, str], parse: Parse) -> None:
        self.tables: dict[str, dict[str, Doc]] = {}
        self.groups: dict[str, dict[str, dict[str, None]]] = {}
        self.ndocs = 0
        self._group_by = group_by
        self._parse = parse

    def keeps_parsed(self, name: str) -> bool:
        return name not in self._group_by

    def get(self, name: str, doc_id: str) -> dict[str, Any] | None:
        table = self.tables.get(name, {})
        doc = table.get(doc_id)
        if doc is None or isinstance(doc, dict):
            return doc
        parsed = self.read(name, doc_id, doc)
        if self.keeps_parsed(name):
            table[doc_id] = parsed
        return parsed

    def load(self, name: str, doc_id: str) -> dict[str, Any] | None:
        doc = self.tables.get(name, {}).get(doc_id)
        return copy.deepcopy(doc) if doc is None or isinstance(doc, dict) else self.read(name, doc_id, doc)

    def read(self, name: str, doc_id: str, doc: LazyDoc | Pending) -> dict[str, Any]:
        """A fresh dict of a document not parsed yet: its stored body, then the changes appended after it."""
        changes: list[dict[str, Any]] = []
        while isinstance(doc, Pending):
            changes.append(doc.change)
            doc = doc.base
        parsed = self._parse(name, doc_id, doc)
        for change in reversed(changes):
            parsed = apply_update(parsed, change)
        return parsed

    def memo(self, name: str, doc_id: str, derive: Callable[[dict[str, Any]], T]) -> T | None:
        doc = self.tables.get(name, {}).get(doc_id)
        if isinstance(doc, Pending):
            return derive(self.read(name, doc_id, doc))
        if not isinstance(doc, LazyDoc):
            return None if doc is None else derive(doc)
        if doc.memo is None:
            doc.memo = derive(self._parse(name, doc_id, doc))
        return doc.memo

    def changes_to(self, data: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, dict[str, Any] | None]]:
        """The changes that turn the live state into ``data`` (TinyDB's whole-state ``write``)."""
        ops: list[tuple[str, str, dict[str, Any] | None]] = []
        for name in list(self.tables):
            new = data.get(name, {})
            ops.extend((name, doc_id, None) for doc_id in self.tables[name] if str(doc_id) not in new)
        for name, docs in data.items():
            current = self.parsed(name)
            ops.extend((name, str(key), dict(doc)) for key, doc in docs.items() if current.get(str(key)) != doc)
        return ops

    def parsed(self, name: str) -> dict[str, dict[str, Any]]:
        """A whole table parsed: the live dict for kept tables, a fresh one for grouped tables."""
        table = self.tables.get(name, {})
        if not self.keeps_parsed(name):
            return {doc_id: doc if isinstance(doc, dict) else self.read(name, doc_id, doc)
                    for doc_id, doc in list(table.items())}
        for doc_id, doc in list(table.items()):
            if not isinstance(doc, dict):
                table[doc_id] = self.read(name, doc_id, doc)
        return table  # type: ignore[return-value]

    def group(self, name: str, key: str, last: int | None = None) -> list[str]:
        """Ids of a table's documents whose ``group_by`` field equals ``key``, oldest first; O(last)."""
        ids = self.groups.get(name, {}).get(key)
        if not ids:
            return []
        if last is None:
            return list(ids)
        newest = list(islice(reversed(ids), max(last, 0)))
        newest.reverse()
        return newest

    def apply(self, name: str, doc_id: str, doc: Doc | Update | None) -> None:
        """Record a new version of a document (None: its deletion), keeping the group index in step."""
        if isinstance(doc, Update):
            self._update(name, doc_id, doc.change)
            return
        table = self.tables.setdefault(name, {})
        old = table.pop(doc_id, None) if doc is None else table.get(doc_id)
        if old is None and type(doc) is LazyDoc and doc.group is not None:  # the common case, kept fast
            table[doc_id] = doc
            self.ndocs += 1
            if name in self._group_by:
                self.groups.setdefault(name, {}).setdefault(doc.group, {})[doc_id] = None
            return
        if doc is not None:
            table[doc_id] = doc
            self.ndocs += old is None
        elif old is not None:
            self.ndocs -= 1
        if name in self._group_by:
            old_key, new_key = self._group_key(name, doc_id, old), self._group_key(name, doc_id, doc)
            if old is not None and (doc is None or old_key != new_key):
                self._ungroup(name, old_key, doc_id)
            if doc is not None and (old is None or old_key != new_key) and isinstance(new_key, str):
                self.groups.setdefault(name, {}).setdefault(new_key, {})[doc_id] = None

    def _update(self, name: str, doc_id: str, change: dict[str, Any]) -> None:
        """Apply an appended change: at once to a parsed document, on first read to one not parsed yet. A change
        to a document that is gone (deleted by another process meanwhile) changes nothing."""
        table = self.tables.get(name, {})
        old = table.get(doc_id)
        if old is None:
            return
        if name in self._group_by:  # a change may move it to another group: store it whole (not used by TinyDb)
            self.apply(name, doc_id, apply_update(old if isinstance(old, dict) else self.read(name, doc_id, old),
                                                  change))
        else:
            table[doc_id] = apply_update(old, change) if isinstance(old, dict) else Pending(old, change)

    def _group_key(self, name: str, doc_id: str, doc: Doc | None) -> Any:
        if isinstance(doc, LazyDoc):
            if doc.group is not None:
                return doc.group
            doc = self._parse(name, doc_id, doc)  # a record written without its group: read it now
        return doc.get(self._group_by[name]) if doc is not None else None

    def _ungroup(self, name: str, key: Any, doc_id: str) -> None:
        groups = self.groups.get(name, {})
        ids = groups.get(key) if isinstance(key, str) else None
        if ids is not None:
            ids.pop(doc_id, None)
            if not ids:
                del groups[key]
