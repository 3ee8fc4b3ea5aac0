"""Whether the process that wrote a ``running`` run still lives, so a run whose kernel died (``kill -9``, a
crash, a reboot) is shown as ``interrupted`` instead of ``running`` forever.

A running run records its writer: pid, host, the machine's boot id and the process's start time. A pid alone is
not enough, since pids are reused; with the boot id and the start time a reused pid or a rebooted machine is told
apart from the writer itself. Another host's writer cannot be checked from here, so its runs stay ``running``.
Runs stored before writers were recorded (format-1 files, and the first format-2 ones) carry none: every writer
since records itself, so such a run older than this process is no longer being written.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from typing import Any

_cache: dict[int, dict[str, Any]] = {}
# when this process loaded, in whole seconds as a run's created_at: older writer-less runs are nobody's now
_LOADED = int(time.time())

ENDED = "its process ended (killed or crashed) before the reply was complete"
UNRECORDED = "left unfinished by an older nbsessions (which recorded no process), before this kernel started"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


@functools.cache
def _boot_id() -> str | None:
    """The running kernel's boot id: fixed for this process's whole life, so read once."""
    return _read("/proc/sys/kernel/random/boot_id")


@functools.cache
def _host() -> str:
    return socket.gethostname()


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from ``/proc/PID/stat``; None where there is no /proc."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else None


def current_writer() -> dict[str, Any]:
    """This process, as a running run records it."""
    pid = os.getpid()
    if pid not in _cache:  # per pid: a forked child is another writer
        stat = _proc_stat(pid)
        _cache[pid] = {"pid": pid, "host": _host(), "boot": _boot_id(),
                       "start": stat[1] if stat else None}
    return dict(_cache[pid])


def writer_alive(writer: Any) -> bool | None:
    """True while the writer lives, False once it is gone, None when this process cannot tell."""
    if not isinstance(writer, dict) or not isinstance(writer.get("pid"), int):
        return None
    if writer.get("host") != _host():
        return None
    boot = _boot_id()
    if writer.get("boot") and boot and writer["boot"] != boot:
        return False  # the machine restarted since
    pid = writer["pid"]
    if pid == os.getpid() and writer == current_writer():
        return True  # this very process: no need to ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    except OSError:
        return None
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state in ("Z", "X"):
        return False  # killed, not yet reaped
    return not (writer.get("start") and start != writer["start"])  # a different process reusing the pid


def why_unfinished(writer: Any, created_at: Any) -> str | None:
    """Why a ``running`` run will never finish (its ``error`` then), or None while it may still be written.

    No writer: stored by a version that recorded none. Only one created after this process loaded could still
    belong to such a kernel, alive in parallel; an older one (or one without a usable time) is left from a
    kernel that has gone.
    """
    if writer is None:
        recent = isinstance(created_at, (int, float)) and created_at >= _LOADED
        return None if recent else UNRECORDED
    return ENDED if writer_alive(writer) is False else None
