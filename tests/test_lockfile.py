"""The journal's inter-process lock: exclusive across processes, bounded waits, safe across fork."""

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import types

import pytest

from nbsessions.db import lockfile
from nbsessions.db.journal import JournalStorage
from nbsessions.db.lockfile import FileLock, LockTimeout, lock_path
from nbsessions.records.errors import StorageError

HOLDER = textwrap.dedent("""
    import sys
    from nbsessions.db.lockfile import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.readline()  # hold until the test says so
    lock.release()
    print("released", flush=True)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock until told to let go."""
    path = str(tmp_path / "db.json.lock")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    yield path, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_lock_held_by_another_process_times_out(holder):
    path, _ = holder
    lock = FileLock(path, timeout=0.05)
    with pytest.raises(LockTimeout):
        lock.acquire()
    lock.close()


def test_the_lock_is_acquired_once_the_other_process_lets_go(holder, monkeypatch):
    path, proc = holder
    blocked, acquired = threading.Event(), threading.Event()

    def flock(fd, operation):  # the real flock, noting when a try found the lock taken
        try:
            return fcntl.flock(fd, operation)
        except BlockingIOError:
            blocked.set()
            raise

    monkeypatch.setattr(lockfile, "fcntl", types.SimpleNamespace(
        flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB, LOCK_UN=fcntl.LOCK_UN))
    lock = FileLock(path, timeout=30)
    waiter = threading.Thread(target=lambda: (lock.acquire(), acquired.set()))
    waiter.start()
    assert blocked.wait(30) and not acquired.is_set()  # it is waiting: the other process still holds the lock
    proc.stdin.write("go\n")
    proc.stdin.flush()
    waiter.join(30)
    assert acquired.is_set() and proc.stdout.readline().strip() == "released"
    lock.release()
    lock.close()


def test_a_stuck_writer_gives_a_clear_storage_error(tmp_path):
    storage = JournalStorage(tmp_path / "db.json", lock_timeout=0.05)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, lock_path(str(tmp_path / "db.json"))],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(StorageError, match="stayed locked by another process"):
            storage.commit([("meta", "k", {"value": 1})])
    finally:
        proc.kill()
        proc.wait()
        storage.close()


def test_a_forked_child_takes_its_own_lock_not_its_parents(tmp_path):
    lock = FileLock(str(tmp_path / "x.lock"), timeout=0.05)
    lock.acquire()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent holds the lock, so the child must wait (and here, time out)
        try:
            lock.acquire()
            os.write(write, b"acquired")
        except LockTimeout:
            os.write(write, b"timed out")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"timed out"
    lock.release()
    lock.close()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_where_there_is_no_fcntl_the_package_imports_runs_and_keeps_final_writes(tmp_path):
    """As on Windows: every lock falls back to ``filelock`` (the journal's and the spool's), nothing fails to import."""
    script = textwrap.dedent("""
        import sys
        sys.modules["fcntl"] = None  # `import fcntl` raises ImportError, as where it does not exist
        from nbsessions import Agent, TinyDb
        from nbsessions.runs.core import spool
        agent = Agent(db=TinyDb(sys.argv[1]))
        print(agent.run("hello").status.value, spool.fcntl is None, flush=True)
    """)
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script, str(tmp_path / "s.json")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["completed", "True"]
