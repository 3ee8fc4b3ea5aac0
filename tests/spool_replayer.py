"""A process that opens a store for writing when told to, noting each write of a kept run it makes (test_spool.py).

``python spool_replayer.py TARGET LOG`` (``SPOOL_LOCK=filelock``: locking as where there is no ``fcntl``):
prints ``{"ready": true}``, waits for one line on stdin (the test sends
it to every replayer at once), builds an ``Agent`` on TARGET — which stores what earlier processes kept for it —
and prints ``{"done": true}``. Each run write and session update it makes appends one line to LOG.
"""

from __future__ import annotations

import os
import sys

from worker_protocol import reply

from nbsessions import Agent
from nbsessions.db import open_store


def main(target: str, log: str) -> None:
    if os.environ.get("SPOOL_LOCK") == "filelock":  # as on Windows, where there is no fcntl
        from nbsessions.runs.core import spool

        spool.fcntl = None
    db = open_store(target)
    upsert, update = db.upsert_run_if_session, db.update_session

    def note(line: str) -> None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)

    def counted_upsert(run, **kwargs):
        stored = upsert(run, **kwargs)
        note(f"run {run.run_id} {stored}")
        return stored

    def counted_update(session_id, **kwargs):
        note(f"state {session_id} {sorted(kwargs.get('state_patch') or {})}")
        return update(session_id, **kwargs)

    db.upsert_run_if_session, db.update_session = counted_upsert, counted_update
    reply(ready=True)
    sys.stdin.readline()
    Agent(db=db)
    reply(done=True)
    db.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
