"""pytest-jupyter's real Jupyter Server fixtures (``jp_fetch`` ...), for the sidebar's REST API tests only.

Imported here rather than as a global plugin: its autouse fixtures and its coroutine-test hooks then apply to this
folder alone, and the rest of the suite runs as before. The folder is a package, so this conftest is imported as
``server_api.conftest`` and never shadows ``tests/conftest.py`` (which other tests import as ``conftest``).
"""

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403


@pytest.fixture
def jp_server_config():
    """The extension enabled as the installed config file enables it, on a server refusing anonymous requests."""
    return {"ServerApp": {"jpserver_extensions": {"nbsessions.server": True},
                          "allow_unauthenticated_access": False}}
