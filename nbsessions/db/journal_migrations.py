"""The journal file's format versions, as one named migration each (``migrations.Registry``).

A file's header says its format (``{"nbsessions": 3, ...}``); format ``n`` becomes ``n + 1`` by migration ``n``.
Older files are read as they are; on the first write to one, the journal runs the migrations it is missing on its
documents, in order and each once, then compacts, which writes every live document under the current header
before anything new is appended. A migration that only needs the new header does nothing to the documents: the
compaction that follows is its whole work.
"""

from __future__ import annotations

from typing import Any

from nbsessions.db.migrations import Registry

MIGRATIONS = Registry()

Tables = dict[str, dict[str, Any]]
"""Table name -> document id -> document (parsed, or not read yet): what a migration may rewrite."""


@MIGRATIONS("history references")
def m001_history_references(tables: Tables) -> None:
    """A run stores the history it sent as references to earlier runs (``RunOutput.to_dict(history_refs=True)``).
    Format-1 runs hold full copies, which format 2 still reads as they are: nothing to rewrite."""


@MIGRATIONS("field updates")
def m002_field_updates(tables: Tables) -> None:
    """A session is stored whole once, then ``upd`` records append only what changes in it (``Update``). Format-2
    files hold no such records and every one of their records reads the same in format 3: nothing to rewrite."""


FORMAT_VERSION = 1 + MIGRATIONS.latest
"""The format this nbsessions writes: one past the oldest, for each migration."""


def migrate(header: dict[str, Any] | None, tables: Tables) -> list[str]:
    """Run the migrations the file of ``header`` is missing on its documents; their names, in order (none: the
    file is current, or has no header yet)."""
    pending = MIGRATIONS.after((header or {}).get("nbsessions", FORMAT_VERSION) - 1)
    for step in pending:
        step.apply(tables)
    return [step.name for step in pending]
