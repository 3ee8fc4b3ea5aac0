"""Run inside a private mount namespace (``unshare``) by test_spool: a run whose TinyDB file fills its disk
before the run's final write, in a process that then exits; prints what the store held before and after a next
process opened it with room again, as JSON.

``python full_disk_spool.py FOLDER``: mounts a 1 MB tmpfs on FOLDER; $XDG_STATE_HOME must lie outside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
READ = """
import json, sys
from nbsessions import Agent, TinyDb
path, run_id, session_id, write = sys.argv[1:5]
with TinyDb(path, read_only=write != "write") as db:
    if write == "write":
        Agent(db=db)
    run = db.get_run(run_id)
    print(json.dumps({"status": run.status.value, "content": run.content,
                      "state": db.get_session(session_id).session_state}))
"""


def python(*args: str) -> str:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True).stdout


def main(folder: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
    path = folder / "s.json"
    lines = [json.loads(line) for line in python(str(HERE / "spool_worker.py"), str(path), str(folder)).splitlines()]
    ready, ended = lines[0], lines[-1]
    pending = Path(os.environ["XDG_STATE_HOME"]) / "nbsessions" / "pending"
    report = {"ended": ended, "kept": sorted(os.listdir(pending)) if pending.exists() else []}
    report["before"] = json.loads(python("-c", READ, str(path), ended["run"], ready["session"], "read"))
    (folder / "filler").unlink()  # room again
    report["after"] = json.loads(python("-c", READ, str(path), ended["run"], ready["session"], "write"))
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
