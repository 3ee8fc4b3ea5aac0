"""The line protocol of the worker processes the race tests start (agent_worker.py, journal_worker.py): one JSON
command a line on stdin, ``{"cmd": NAME, ...arguments}``, and JSON reply lines on stdout."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

_OUT = threading.Lock()  # change listeners reply from their own thread


def reply(**data: object) -> None:
    """One reply line, written whole even when several threads reply at once."""
    with _OUT:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()


def serve(db: Any, commands: Mapping[str, Callable[..., None]]) -> None:
    """Call ``commands[NAME](db, **arguments)`` for each command line, until stdin closes or ``exit`` comes."""
    for line in sys.stdin:
        cmd = json.loads(line)
        name = cmd.pop("cmd")
        if name == "exit":
            return
        commands[name](db, **cmd)
