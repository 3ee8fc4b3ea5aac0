"""The line protocol of the worker processes the race tests start (agent_worker.py, journal_worker.py), both
ends: one JSON command a line on stdin, ``{"cmd": NAME, ...arguments}``, and JSON reply lines on stdout.
``reply`` and ``serve`` run in the worker; ``Worker`` starts one and drives it from a test."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPLY_WAIT = 120  # seconds a test waits for one reply before failing (never a sleep: it returns once the line comes)

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


class Worker:
    """``python tests/SCRIPT ARGS`` in a process of its own, importing this tree; ``ready`` is its first line.

    A thread reads its stdout, so a reply that never comes fails the test after ``REPLY_WAIT`` instead of hanging
    it; its stderr goes to a temporary file (a pipe could fill and stall it) and is shown when it fails."""

    def __init__(self, script: str, *args: object) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, str(HERE / script), *map(str, args)], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.killed = False
        self._lines: queue.Queue[str] = queue.Queue()
        self._pump = threading.Thread(target=self._read_stdout, daemon=True)
        self._pump.start()
        self.ready = self.read()
        assert self.ready.get("ready") is True, self.ready

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")  # the end of its output

    def _line(self) -> str:
        try:
            return self._lines.get(timeout=REPLY_WAIT)
        except queue.Empty:
            raise AssertionError(f"no reply from the worker within {REPLY_WAIT} s") from None

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def send(self, **cmd: object) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        line = self._line()
        if not line:
            raise AssertionError(f"worker exited ({self.proc.wait()}): {self.errors()}")
        return json.loads(line)

    def call(self, **cmd: object) -> dict:
        self.send(**cmd)
        return self.read()

    def read_until_done(self) -> list[str]:
        """The runs a ``stream`` command confirms, in order, up to its ``done`` line."""
        runs = []
        while "done" not in (msg := self.read()):
            runs.append(msg["run"])
        return runs

    def kill(self) -> list[str]:
        """SIGKILL now; returns the runs the worker confirmed before it died (a line it was cut in is not one)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.killed = True
        rest = list(iter(self._line, ""))
        self.close()
        return [json.loads(line)["run"] for line in rest if line.rstrip("\n").endswith("}")]

    def close(self) -> None:
        """Send ``exit`` and check the worker ended cleanly (a killed one is only cleaned up)."""
        if not self.killed:
            if self.proc.poll() is None:
                self.send(cmd="exit")
            assert self.proc.wait(timeout=REPLY_WAIT) == 0, self.errors()
        self.proc.stdin.close()
        self._pump.join()
        self.proc.stdout.close()
        self.stderr.close()
