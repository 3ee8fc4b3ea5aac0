"""The Jupyter Server side of the "Agent sessions" sidebar: REST handlers that read a notebook's sessions without
a kernel, through the same store classes the kernel writes with (see ``handlers.py`` and ``stores.py``).

Enabled by ``etc/jupyter/jupyter_server_config.d/nbsessions.json`` (installed with the package), as
``ServerApp.jpserver_extensions = {"nbsessions.server": True}``.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from nbsessions.server.app import SidebarServer

    return [{"module": "nbsessions.server", "app": SidebarServer}]
