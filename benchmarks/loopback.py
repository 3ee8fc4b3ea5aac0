"""The loopback OpenAI test server (``tests/openai_server.py``) in a process of its own, as a real server would be."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER = Path(__file__).resolve().parent.parent / "tests" / "openai_server.py"


@contextmanager
def server_in_process(latency_ms: float) -> Iterator[str]:
    """The server as a script on a free port, answering after ``latency_ms``; yields its base URL."""
    child = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", "--latency-ms", str(latency_ms)],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line.startswith("serving on "):
            raise RuntimeError(f"the test server did not start: {line!r}")
        yield line.split()[-1]
    finally:
        child.terminate()
        child.wait(timeout=10)
