"""The server extension as a jupyter_server ``ExtensionApp``: it owns the open stores, and closes them when the
server stops (a PostgreSQL store holds a connection pool and a listening thread)."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp

from nbsessions.server.handlers import routes
from nbsessions.server.stores import StoreCache


class SidebarServer(ExtensionApp):
    """``/nbsessions/api/...``: what the "Agent sessions" sidebar reads."""

    name = "nbsessions.server"
    load_other_extensions = True

    def initialize_handlers(self) -> None:
        self.stores = StoreCache()
        self.handlers.extend(routes(self.stores))
        self.log.info("nbsessions: the sidebar's API is at /nbsessions/api/")

    async def stop_extension(self) -> None:
        self.stores.close()
