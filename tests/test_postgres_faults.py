"""PostgreSQL under faults: a server restarted between cells, statements that time out, roles that may not migrate.

Each test drives a real server (tests/pg_server.py): restarts are real ``pg_ctl stop -m fast`` / ``start``.
"""

from __future__ import annotations

import contextlib

import pytest

from nbsessions.db.postgres import PostgresDb
from nbsessions.schema import RunOutput, RunStatus, Session

pytestmark = pytest.mark.postgres


def test_the_first_operation_after_a_restart_succeeds_ten_times_in_a_row(postgres_url, postgres_server):
    """Every pooled connection is stale after a restart; none of them may reach the caller as an error."""
    with PostgresDb(postgres_url, pool_size=4) as db:
        session = db.create_session(Session(user_id="bob"))
        first_ops = [
            lambda: db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.completed)),
            lambda: db.update_session(session.session_id, state_patch={"n": 1}),
            lambda: db.list_sessions(user_id="bob"),
            lambda: db.get_session(session.session_id),
            lambda: db.create_session(Session(user_id="bob")),
            lambda: db.set_meta("k", "v"),
            lambda: db.list_runs(session.session_id),
            lambda: db.session_totals(session.session_id),
            lambda: db.upsert_run(RunOutput(session_id=session.session_id), durable=False),
            lambda: db.delete_session(db.create_session(Session(user_id="bob")).session_id),
        ]
        for op in first_ops:
            with contextlib.ExitStack() as held:  # the pool at its full size: four connections go stale at once
                for _ in range(4):
                    held.enter_context(db._connection("warm the pool"))
            postgres_server.restart()
            op()  # before: "terminating connection due to administrator command" or "no free connection"
        assert db.get_session(session.session_id).session_state == {"n": 1}
        assert len(db.list_runs(session.session_id)) == 2
