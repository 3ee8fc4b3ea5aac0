"""A separate process holding a store open, driven by JSON commands on stdin, for the reliability tests.

``python journal_worker.py PATH|URL [COMPACT_MIN_LINES]`` prints ``{"ready": ...}`` once the file (or the
``postgresql://`` database) is open, then one JSON reply line per command (``stream`` also prints one line per
run, after that run is durably stored; ``listen`` one line per change another process makes).
"""

from __future__ import annotations

import json
import os
import sys
import threading

from nbsessions.db import TinyDb
from nbsessions.db.urls import is_postgres_url, open_store
from nbsessions.schema import RunOutput, RunStatus


def payload(run_id: str, index: int, max_size: int) -> str:
    """Deterministic content whose size varies a lot, so large records span many pages of a write."""
    size = (index * 7919) % max_size
    unit = run_id + ";"
    return (unit * (size // len(unit) + 1))[:size]


_OUT = threading.Lock()  # change listeners reply from their own thread


def reply(**data: object) -> None:
    with _OUT:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()


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


def main(argv: list[str]) -> None:
    if is_postgres_url(argv[1]):
        db = open_store(argv[1])
    else:
        db = TinyDb(argv[1], compact_min_lines=int(argv[2]) if len(argv) > 2 else 1000)
    reply(ready=True, pid=os.getpid())
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("cmd")
        if op == "stream":
            stream(db, **cmd)
        elif op == "patch":
            for i in range(cmd["n"]):
                db.update_session(cmd["session"], state_patch={f"{cmd['tag']}-{i}": i})
            reply(done=cmd["n"])
        elif op == "upsert":
            for run in cmd["runs"]:
                db.upsert_run(RunOutput.from_dict(run))
            reply(done=len(cmd["runs"]))
        elif op == "list":
            reply(runs=[[r.run_id, r.content] for r in db.list_runs(cmd["session"])])
        elif op == "compact":
            db.compact()
            reply(done=True)
        elif op == "listen":
            db.add_change_listener(lambda event, session, user: reply(event=event, session=session, user=user))
            reply(listening=True)
        elif op == "exit":
            break
    db.close()


if __name__ == "__main__":
    main(sys.argv)
