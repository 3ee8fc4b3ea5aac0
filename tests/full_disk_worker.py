"""Run inside a private mount namespace (``unshare``) by test_bad_input_files: mounts a small tmpfs on the folder
given, fills it, then tries what must fail whole on a full disk; prints what happened as JSON."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: p.read_bytes().hex() for p in sorted(folder.iterdir()) if p.name != "filler"}


def fill(folder: Path) -> None:
    """Write until the device is full (ENOSPC) in ever smaller pieces, so the next write of any size fails."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    for size in (65536, 4096, 1):
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * size)
    os.close(fd)


def attempt(fn) -> dict[str, str]:
    try:
        fn()
    except Exception as exc:  # reported to the test, which asserts the type and the message
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": "", "message": ""}


def main(folder: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
    from nbsessions import Agent, TinyDb
    from nbsessions.__main__ import main as cli
    from nbsessions.explore import export_session

    path = folder / "s.json"
    db = TinyDb(path)
    agent = Agent(db=db)
    run = agent.run("hello " * 2000)
    (folder / "old.md").write_text("an earlier export\n")
    fill(folder)
    before = snapshot(folder)
    report = {
        "compact": attempt(db.compact),
        "export_new": attempt(lambda: export_session(agent, run.session_id, "md", folder / "new.md")),
        "export_over": attempt(lambda: export_session(agent, run.session_id, "json", folder / "old.md")),
        "run": attempt(lambda: agent.run("a run on a full disk " * 3000, session_id=run.session_id)),
    }
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli(["export", str(path), run.session_id, "-o", str(folder / "cli.md")])
    report["cli"] = {"code": code, "stderr": err.getvalue()}
    report["unchanged"] = snapshot(folder) == before
    report["names"] = sorted(p.name for p in folder.iterdir())
    (folder / "filler").unlink()  # space again: the store goes on where it was
    agent.run("after the disk had room again", session_id=run.session_id)
    db.close()
    with TinyDb(path) as reopened:
        report["after"] = [r.input[:10] for r in reopened.list_runs(run.session_id)]
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    os._exit(0)
