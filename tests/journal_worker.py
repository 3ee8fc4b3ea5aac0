"""A separate process holding a store open, driven by JSON commands on stdin, for the reliability tests.

``python journal_worker.py PATH|URL [COMPACT_MIN_LINES]`` prints ``{"ready": ...}`` once the file (or the
``postgresql://`` database) is open, then one JSON reply line per command (``stream`` also prints one line per
run, after that run is durably stored; ``listen`` one line per change another process makes).
"""

from __future__ import annotations

import os
import sys

from worker_protocol import reply, serve

from nbsessions.db import TinyDb, open_store
from nbsessions.db.urls import is_postgres_url
from nbsessions.records.schema import RunOutput, RunStatus


def payload(run_id: str, index: int, max_size: int) -> str:
    """Deterministic content whose size varies a lot, so large records span many pages of a write."""
    size = (index * 7919) % max_size
    unit = run_id + ";"
    return (unit * (size // len(unit) + 1))[:size]


def stream(db: TinyDb, session: str, tag: str, n: int, max_size: int = 200,
           stages: tuple[str, ...] = ("completed",), compact_every: int = 0) -> None:
    for i in range(n):
        if compact_every and i % compact_every == compact_every - 1:
            db.compact()
        run_id = f"{tag}-{i:05d}"
        for stage in stages:
            content = payload(run_id, i, max_size) if stage == "completed" else ""
            db.upsert_run(RunOutput(run_id=run_id, session_id=session, status=RunStatus(stage), content=content))
        reply(run=run_id)
    reply(done=n)


def patch(db: TinyDb, session: str, tag: str, n: int) -> None:
    for i in range(n):
        db.update_session(session, state_patch={f"{tag}-{i}": i})
    reply(done=n)


def upsert(db: TinyDb, runs: list[dict]) -> None:
    for run in runs:
        db.upsert_run(RunOutput.from_dict(run))
    reply(done=len(runs))


def list_runs(db: TinyDb, session: str) -> None:
    reply(runs=[[r.run_id, r.content] for r in db.list_runs(session)])


def compact(db: TinyDb) -> None:
    db.compact()
    reply(done=True)


def listen(db: TinyDb) -> None:
    db.add_change_listener(lambda event, session, user: reply(event=event, session=session, user=user))
    reply(listening=True)


def main(argv: list[str]) -> None:
    if is_postgres_url(argv[1]):
        db = open_store(argv[1])
    else:
        db = TinyDb(argv[1], compact_min_lines=int(argv[2]) if len(argv) > 2 else 1000)
    reply(ready=True, pid=os.getpid())
    serve(db, {"stream": stream, "patch": patch, "upsert": upsert, "list": list_runs, "compact": compact,
               "listen": listen})
    db.close()


if __name__ == "__main__":
    main(sys.argv)
