"""The Jupyter Server side of the "Agent sessions" sidebar: REST handlers that read a notebook's sessions without
a kernel, through the same store classes the kernel writes with (see ``handlers.py`` and ``stores.py``).

Enabled by ``etc/jupyter/jupyter_server_config.d/nbsessions.json`` (installed with the package), as
``ServerApp.jpserver_extensions = {"nbsessions.server": True}``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:  # shown by `jupyter server extension list` (importing the nbsessions package would load the kernel's surfaces)
    __version__ = version("nbsessions")
except PackageNotFoundError:  # a checkout on sys.path, not installed
    __version__ = "dev"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from nbsessions.server.app import SidebarServer

    return [{"module": "nbsessions.server", "app": SidebarServer}]
