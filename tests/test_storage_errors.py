"""A database that cannot be used as it is: a directory in its place, a read-only file or folder, a full disk.

Each is one ``StorageError`` line naming the path (a red ``UsageError`` line in the magic), nothing half-written,
and the read-only CLI still reads what it can. Tests run as root, which ignores permission bits, so read-only
places are made the way root cannot write either: a read-only bind mount, or ``chattr +i``. Each skips with the
reason when the machine does not allow it.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess

import pytest
from conftest import RecordingModel
from notebook_shell import one_red_line, stored_runs

from nbsessions import Agent, StorageError, TinyDb
from nbsessions.__main__ import main


def make_db(path) -> str:
    with TinyDb(path) as db:
        agent = Agent(model=RecordingModel(), db=db)
        run = agent.run("kept")
        agent.set_active_session(run.session_id)
        return run.session_id


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _skip_unless(done: subprocess.CompletedProcess, why: str) -> None:
    if done.returncode != 0:
        pytest.skip(f"{why}: {done.stderr.strip() or done.returncode}")


@contextlib.contextmanager
def _changed(do: list[str], undo: list[str], why: str):
    """``do`` run (skipped with ``why`` and its error where the machine refuses it), undone by ``undo`` after."""
    _skip_unless(_run(*do), why)
    try:
        yield
    finally:
        _run(*undo)


@contextlib.contextmanager
def read_only_mount(folder):
    """``folder`` bind-mounted onto itself read-only: even root gets EROFS."""
    # lazy unmount: a file a failed test left open must not keep it mounted
    with _changed(["mount", "--bind", str(folder), str(folder)], ["umount", "-l", str(folder)],
                  "cannot bind-mount here to make a read-only folder"):
        _skip_unless(_run("mount", "-o", "remount,bind,ro", str(folder)), "cannot remount read-only here")
        yield folder


@contextlib.contextmanager
def immutable(path):
    """``chattr +i``: a file nobody, root included, may change."""
    with _changed(["chattr", "+i", str(path)], ["chattr", "-i", str(path)], "chattr +i is not available here"):
        yield path


@contextlib.contextmanager
def small_tmpfs(folder, size: str = "256k"):
    folder.mkdir()
    with _changed(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                  ["umount", "-l", str(folder)], "cannot mount a small tmpfs to fill the disk"):
        yield folder


def fill(folder) -> None:
    """Take every free block, down to the last one."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while f.write(b"x" * size):
                    pass


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


# -- a directory in place of the file ---------------------------------------------------------------
def test_a_directory_in_place_of_the_db_is_one_storage_error_naming_it(tmp_path):
    folder = tmp_path / "sessions.json"
    folder.mkdir()
    with pytest.raises(StorageError) as caught:
        TinyDb(folder)
    assert str(folder) in str(caught.value) and "directory" in str(caught.value)
    assert "\n" not in str(caught.value) and os.listdir(folder) == []
    code, _ = cli("ls", str(folder))
    assert code == 1


def test_the_magic_says_so_in_one_red_line_and_writes_nothing(nb, workdir):
    (workdir / "nbsessions.json").mkdir()
    ran = nb.run("%%agent\nhello")
    line = one_red_line(ran)
    assert line.startswith("UsageError") and str(workdir / "nbsessions.json") in line and "directory" in line


# -- read-only file and folder ----------------------------------------------------------------------
def test_a_read_only_file_is_one_storage_error_and_the_cli_still_reads_it(tmp_path):
    path = tmp_path / "s.json"
    sid = make_db(path)
    before = path.read_bytes()
    with immutable(path):
        with pytest.raises(StorageError) as caught:
            TinyDb(path)
        assert str(path) in str(caught.value) and "read-only" in str(caught.value)
        code, out = cli("ls", str(path), "--plain")
        assert code == 0 and sid[:8] in out
        code, out = cli("show", str(path), sid[:8])
        assert code == 0 and "echo kept" in out
        code, out = cli("export", str(path), sid[:8], "-f", "json")
        assert code == 0 and "echo kept" in out
    assert path.read_bytes() == before


def test_a_read_only_folder_is_one_storage_error_and_the_cli_still_reads_it(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "s.json"
    sid = make_db(path)
    os.unlink(path.parent / f".{path.name}.lock")  # a folder copied without its lock file: the reader must not need one
    with read_only_mount(folder):
        for target in (path, folder / "new.json"):
            with pytest.raises(StorageError) as caught:
                TinyDb(target)
            assert str(target) in str(caught.value) and "read-only" in str(caught.value)
        code, out = cli("show", str(path), sid[:8])
        assert code == 0 and "echo kept" in out
        with TinyDb(path, read_only=True) as db, pytest.raises(StorageError, match="read-only"):
            db.upsert_session(db.list_sessions()[0])
    assert sorted(os.listdir(folder)) == ["s.json"]


def test_the_magic_on_a_read_only_folder_is_one_red_line(nb, workdir):
    folder = workdir / "ro"
    folder.mkdir()
    with read_only_mount(folder):
        ran = nb.run("%agent db ro/s.json")
        assert one_red_line(ran).startswith("UsageError") and "read-only" in one_red_line(ran)
        assert nb.run("%%agent\nstill works").result.success  # on the previous database
    assert [r.input for r in stored_runs(workdir / "nbsessions.json")] == ["still works"]


# -- a full disk --------------------------------------------------------------------------------------
def test_a_full_disk_is_one_storage_error_and_every_confirmed_run_survives(tmp_path):
    folder = tmp_path / "small"
    with small_tmpfs(folder):
        path = folder / "s.json"
        db = TinyDb(path)
        agent = Agent(model=RecordingModel(), db=db)
        first = agent.run("kept")
        fill(folder)
        before = path.read_bytes()
        with pytest.raises(StorageError) as caught:
            agent.run("x" * 100_000, session_id=first.session_id)
        assert str(path) in str(caught.value) and "No space left" in str(caught.value)
        assert "\n" not in str(caught.value)
        assert path.read_bytes() == before  # the part that fit was cut back: no torn line left behind
        db.close()
        os.unlink(folder / "filler")
        with TinyDb(path) as reopened:
            runs = reopened.list_runs(first.session_id)
        assert [(r.input, r.content) for r in runs] == [("kept", "echo kept")]


def test_a_full_disk_in_the_magic_is_one_red_line(nb, workdir):
    folder = workdir / "small"
    with small_tmpfs(folder):
        assert nb.run("%agent db small/s.json").result.success
        assert nb.run("%%agent\nkept").result.success
        fill(folder)
        nb.run("big = 'x' * 100_000")
        ran = nb.run("%%agent\n{big}")
        line = one_red_line(ran)
        assert "No space left" in line and str(folder / "s.json") in line


# -- crash leftovers of compaction ------------------------------------------------------------------------
def test_a_compaction_temp_file_left_by_a_crash_is_removed_on_the_next_open(tmp_path):
    path = tmp_path / "s.json"
    make_db(path)
    leftover = tmp_path / "s.json.compact.tmp"
    leftover.write_bytes(b'{"half": "a compaction killed midway')
    with TinyDb(path) as db:
        assert len(db.list_sessions()) == 1
    assert not leftover.exists()
    leftover.write_bytes(b"again")
    with TinyDb(path, read_only=True):  # a reader never deletes anything
        pass
    assert leftover.exists()
