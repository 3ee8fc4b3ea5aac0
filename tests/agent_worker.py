"""A separate kernel-like process running Agents on one store, for the agent-level race tests.

``python agent_worker.py PATH`` prints ``{"ready": true}`` once the file is open, then reads JSON commands from
stdin (the test sends one to every worker at once, so they start together), one JSON reply line each:

- ``{"cmd": "cells", "session": S, "cells": [..], "reruns": N}``: re-runs each of its cells N times in session S.
- ``{"cmd": "open", "session": S, "user": U, "keys": K}``: runs one prompt in S as user U with K state keys.
- ``{"cmd": "name", "name": N, "user": U}``: creates a session named N as user U, renames it N again, and
  replies with both names it got.

- ``{"cmd": "continue", "run": R, "log": F}``: continues paused run R with ``approve=True``; the approved tool
  appends a line to file F each time its body runs. Replies ``{"status": ...}`` or ``{"error": message}``.

- ``{"cmd": "delete", "session": S}``: deletes session S (as another kernel's panel would); replies
  ``{"deleted": bool}``.

``PATH`` may be a ``postgresql://`` URL: the same commands then run on that database.
"""

from __future__ import annotations

import os
import sys

from worker_protocol import reply, serve

from nbsessions import Agent, FunctionModel, tool
from nbsessions.db.base import BaseDb
from nbsessions.db.urls import open_store
from nbsessions.errors import NbSessionsError, SessionAccessError


def rerun_cells(db: BaseDb, session: str, cells: list[str], reruns: int) -> None:
    agent = Agent(db=db)
    for _ in range(reruns):
        for cell in cells:
            agent.run(f"cell {cell}", session_id=session, cell_id=cell)
    reply(done=True)


def open_as(db: BaseDb, session: str, user: str, keys: int) -> None:
    agent = Agent(db=db, user_id=user)
    try:
        agent.run("hello", session_id=session, session_state={f"{user}-{k}": k for k in range(keys)})
    except SessionAccessError:
        reply(refused=True)
        return
    reply(refused=False)


def name_twice(db: BaseDb, name: str, user: str) -> None:
    agent = Agent(db=db, user_id=user)
    session = agent.create_session(name)
    renamed = agent.set_session_name(session.session_id, session_name=name)
    reply(session=session.session_id, created=session.session_name, renamed=renamed.session_name)


def continue_approved(db: BaseDb, run: str, log: str) -> None:
    @tool(requires_confirmation=True)
    def drop_table(name: str) -> str:
        """Drop a table."""
        with open(log, "a") as f:  # one short append per call: whole lines even from two processes
            f.write(f"{os.getpid()}\n")
        return f"dropped {name}"

    agent = Agent(model=FunctionModel(lambda messages: "done"), db=db, tools=[drop_table])
    try:
        reply(status=agent.continue_run(run, approve=True).status.value)
    except NbSessionsError as exc:
        reply(error=str(exc))


def delete(db: BaseDb, session: str) -> None:
    reply(deleted=Agent(db=db).delete_session(session))


def main(path: str) -> None:
    db = open_store(path)
    reply(ready=True)
    serve(db, {"cells": rerun_cells, "open": open_as, "name": name_twice, "continue": continue_approved,
                "delete": delete})
    db.close()


if __name__ == "__main__":
    main(sys.argv[1])
