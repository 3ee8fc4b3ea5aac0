"""A process whose run ends while its store cannot answer, and which then exits (test_spool.py).

``python spool_worker.py TARGET [FULL_FOLDER]``: opens TARGET (a TinyDB path or a ``postgresql://`` URL, with a
1 s timeout), prints ``{"ready": true, "session": S}`` and runs one prompt in a new session whose state is
``{"keep": 1, "gone": 2}``. The model calls a tool that sets ``colour`` and ``told`` (quoting the API key, as
the reply does) and drops ``gone``, then prints ``{"replying": true}`` and, before its last words, waits for one
line on stdin (the test stops PostgreSQL meanwhile) — or, given FULL_FOLDER, fills that folder's disk instead
(and ends with 20000 dots). It prints ``{"ended": STATUS, "run": ID, "pending": N}`` and exits normally: what
the store never answered is left to the exit handlers.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

from worker_protocol import reply

from nbsessions import Agent, FunctionModel
from nbsessions.db import open_store
from nbsessions.db.postgres import PostgresDb
from nbsessions.llm.base import ToolCall
from nbsessions.runs.core import run_writes
from nbsessions.runs.core.tools import RunContext


def remember(colour: str, run_context: RunContext) -> str:
    """Note a colour (and forget what is gone)."""
    run_context.session_state["colour"] = colour
    run_context.session_state["told"] = f"key {os.environ.get('OPENAI_API_KEY')}"  # must be redacted on disk
    run_context.session_state.pop("gone", None)
    return "noted"


def main(target: str, full: Path | None) -> None:
    from full_disk_worker import fill

    def model(messages, tools):
        if messages[-1].role != "tool":
            return ToolCall("c1", "remember", json.dumps({"colour": "teal"}))
        reply(replying=True)
        if full is not None:
            fill(full)  # the reply below is longer than the room left in the file's last page
        else:
            sys.stdin.readline()
        return f"teal it is (key {os.environ.get('OPENAI_API_KEY')})" + ("." * 20000 if full else "")

    db = PostgresDb(target, timeout=1) if target.startswith("postgresql://") else open_store(target)
    agent = Agent(model=FunctionModel(model), db=db, tools=[remember])
    session = agent.create_session("kept")
    agent.update_session_state({"keep": 1, "gone": 2}, session_id=session.session_id)
    reply(ready=True, session=session.session_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test reads what is stored, not the warning
        run = agent.run("note teal", session_id=session.session_id)
    reply(ended=run.status.value, run=run.run_id, pending=run_writes.pending())


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else None)
