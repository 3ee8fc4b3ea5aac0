"""REST handlers under ``/nbsessions/api/``: a notebook's sessions, one session's runs, and a cheap change token.

Every verb is ``@tornado.web.authenticated`` on jupyter_server's ``APIHandler`` (token or cookie, and XSRF on
anything but GET), and reads through the same store classes as the kernel, on a worker thread: a store read never
blocks the server's event loop. Answers pass through ``redact`` (API keys, database passwords); an error is one
line of JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from nbsessions.errors import NbSessionsError, SessionAccessError, SessionNotFoundError
from nbsessions.redact import redact, redact_data
from nbsessions.server.stores import NotebookStore, PathRefused, StoreCache, locate
from nbsessions.server.views import list_runs, list_sessions

API = ("nbsessions", "api")
PAGE, MAX_PAGE = 50, 1000  # runs per answer: the sidebar asks for more as the user scrolls back


class StoreHandler(APIHandler):
    """Finds the notebook's store from ``?path=`` and answers with what ``read`` returns for it."""

    def initialize(self, stores: StoreCache) -> None:
        self.stores = stores

    async def answer(self, read: Callable[[NotebookStore], dict[str, Any]]) -> None:
        where: NotebookStore | None = None
        try:
            where = locate(self.settings["server_root_dir"], self.get_query_argument("path", ""))
            body = await IOLoop.current().run_in_executor(None, read, where)
        except PathRefused as exc:
            return self.fail(403, str(exc), where)
        except (SessionAccessError, SessionNotFoundError):  # another user's session is as absent as a missing one
            return self.fail(404, "no such session in this notebook's store", where)
        except (NbSessionsError, OSError) as exc:
            return self.fail(500, f"cannot read the sessions: {exc}", where)
        except Exception as exc:  # noqa: BLE001 - the boundary: jupyter_server would send the traceback itself
            self.log.error("nbsessions: reading %s failed: %s", where and where.label, redact(str(exc)))
            return self.fail(500, f"cannot read the sessions: {type(exc).__name__}: {exc}", where)
        self.finish(json.dumps(redact_data(body)))  # the one redaction step, as for every other place

    def fail(self, status: int, message: str, where: NotebookStore | None) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": redact(where.clean(message) if where is not None else message)}))

    def describe(self, where: NotebookStore) -> dict[str, Any]:
        return {"notebook": where.notebook, "store": {"kind": where.kind, "label": where.label},
                "user": where.user, "version": self.stores.version(where)}


class SessionsHandler(StoreHandler):
    """``GET /nbsessions/api/sessions?path=NB[&q=WORDS]``: the notebook's sessions, newest first."""

    @tornado.web.authenticated
    async def get(self) -> None:
        query = self.get_query_argument("q", "")

        def read(where: NotebookStore) -> dict[str, Any]:
            agent = self.stores.agent(where)
            head = self.describe(where)  # taken first: a run landing meanwhile changes it, so nothing is missed
            return {**head, "sessions": list_sessions(agent, query) if agent is not None else []}

        await self.answer(read)


class RunsHandler(StoreHandler):
    """``GET /nbsessions/api/sessions/ID/runs?path=NB[&last=N]``: one session of the user and its newest N runs
    (50 unless asked; at most 1,000), newest first."""

    @tornado.web.authenticated
    async def get(self, session_id: str) -> None:
        try:
            last = min(max(int(self.get_query_argument("last", str(PAGE))), 1), MAX_PAGE)
        except ValueError:
            return self.fail(400, "last must be a whole number of runs", None)

        def read(where: NotebookStore) -> dict[str, Any]:
            agent = self.stores.agent(where)
            if agent is None:
                raise SessionNotFoundError(session_id)
            head = self.describe(where)
            return {**head, **list_runs(agent, session_id, last)}

        await self.answer(read)


class VersionHandler(StoreHandler):
    """``GET /nbsessions/api/version?path=NB``: a token that changes when a run lands (polled by the sidebar)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(lambda where: {"version": self.stores.version(where)})


def routes(stores: StoreCache) -> list[tuple[str, type[StoreHandler], dict[str, Any]]]:
    """The API's URL patterns (the server puts its ``base_url`` in front)."""
    base, options = url_path_join("/", *API), {"stores": stores}
    return [(url_path_join(base, "sessions"), SessionsHandler, options),
            (url_path_join(base, "sessions", r"([^/]+)", "runs"), RunsHandler, options),
            (url_path_join(base, "version"), VersionHandler, options)]
