"""A real IPython shell with nbsessions loaded, driven cell by cell as a front end would: shared by the magic tests."""

from __future__ import annotations

import atexit
import re
from dataclasses import dataclass
from pathlib import Path

from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config
from xss import ActiveContent  # noqa: F401  (the shared checker, for tests that import it from here)

from nbsessions.db.tinydb import TinyDb

SECRET = "sk-test-0123456789-SECRET"


@dataclass
class Ran:
    result: ExecutionResult
    stdout: str
    stderr: str
    outputs: list

    @property
    def html(self) -> list[str]:
        return [o.data.get("text/html", "") for o in self.outputs]

    @property
    def final(self) -> str:
        """The plain text of the last frame shown (what the cell shows once done)."""
        return self.outputs[-1].data["text/plain"]


class Notebook:
    """A fresh IPython shell with the extension loaded, run cell by cell like a front end would."""

    def __init__(self, config: Config | None = None) -> None:
        InteractiveShell.clear_instance()
        config = config or Config()
        config.HistoryManager.hist_file = ":memory:"
        self.shell = InteractiveShell.instance(config=config)
        # IPython resets every shell at interpreter exit (a gc pass each): nothing here needs it, and with
        # hundreds of shells it would add seconds after the last test.
        atexit.unregister(self.shell.atexit_operations)
        self.run("%load_ext nbsessions")

    @property
    def magics(self):
        return self.shell.magics_manager.registry["AgentMagics"]

    def run(self, source: str, cell_id: str | None = None) -> Ran:
        with capture_output() as cap:
            result = self.shell.run_cell(source, store_history=True, cell_id=cell_id)
        return Ran(result, cap.stdout, cap.stderr, cap.outputs)

    def close(self) -> None:
        """Like a kernel shutdown: the extension is unloaded and the shell is gone."""
        self.shell.run_line_magic("unload_ext", "nbsessions")
        InteractiveShell.clear_instance()


def stored_runs(path: Path):
    with TinyDb(path) as db:
        return [run for s in db.list_sessions() for run in db.list_runs(s.session_id)]


def one_red_line(ran: Ran) -> str:
    """The whole visible error of a failed cell; asserts it is one line and no traceback."""
    # Colours, and the line clears a terminal shell prints for a cleared output (a kernel sends clear_output).
    text = re.sub(r"\x1b\[[0-9;]*m|\x1b\[2K\r", "", ran.stdout + ran.stderr).strip()
    assert text.count("\n") == 0, text
    assert "Traceback" not in text and "File " not in text
    return text


def refused(nb: Notebook, cell: str, db_file: Path) -> str:
    """Run a cell that must be refused: it fails, shows no output and leaves ``db_file`` byte for byte as it was.
    Returns its one red line."""
    before = db_file.read_bytes()
    ran = nb.run(cell)
    assert not ran.result.success
    assert ran.outputs == []
    assert db_file.read_bytes() == before
    return one_red_line(ran)


PAYLOAD = ("**bold** <script>alert(1)</script> <img src=x onerror=alert(2)> "
           "[x](javascript:alert(3)) <a href='JavaScript:alert(4)'>y</a> <b onclick=alert(5)>z</b>")
