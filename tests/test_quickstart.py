"""The quickstart notebook, executed top to bottom by a real kernel, offline, as Jupyter would run it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def text_of(cell) -> str:
    """Everything a cell shows as text: streams, the plain-text side of displays, results."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("display_data", "execute_result"):
            parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def cell_after(nb, source_start: str):
    return next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start))


def test_the_committed_notebook_is_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_quickstart_runs_offline_top_to_bottom(tmp_path, monkeypatch):
    work = tmp_path / "nbs"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / "quickstart.ipynb")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NBSESSIONS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", str(work / "quickstart.ipynb"))  # what jupyter_server sets
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    nb = nbformat.read(work / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()

    assert not any(o["output_type"] == "error" for c in nb.cells for o in c.get("outputs", []))
    db_line = text_of(cell_after(nb, "%agent db"))
    assert f"database: {work / 'quickstart.nbsessions.json'}" in db_line and "JPY_SESSION_NAME" in db_line
    assert (work / "quickstart.nbsessions.json").exists()

    first = cell_after(nb, "%%agent --new quickstart")
    assert "nbsessions: using the offline model" in text_of(first)  # the one-time notice
    [reply] = [o for o in first.outputs if o["output_type"] == "display_data"]  # updated in place: one output
    assert "<strong>Offline model</strong>" in reply["data"]["text/html"]
    assert "text/markdown" not in reply["data"]
    assert "offline · quickstart (" in reply["data"]["text/plain"]

    follow_up = text_of(cell_after(nb, "%%agent\nAnd what did I just ask you?"))
    assert "history messages in context: 2" in follow_up
    assert "using the offline model" not in follow_up  # announced once only

    templated = text_of(cell_after(nb, "%%agent --system"))
    assert "Suggest a first model for iris (150 rows)." in templated
    assert "system prompt: You help with classification." in templated

    scratch = text_of(cell_after(nb, "%%agent --new scratch"))
    assert "history messages in context: 0" in scratch and "scratch (" in scratch
    table = text_of(cell_after(nb, "%agent sessions"))
    assert "quickstart" in table and "●  scratch" in table
    assert text_of(cell_after(nb, "%agent use quickstart")).startswith("active session: quickstart (")
    assert "history messages in context: 6" in text_of(cell_after(nb, "%%agent -o last"))  # 3 runs back
    assert text_of(cell_after(nb, "last.status")).startswith("('completed', ")
    assert "session quickstart (" in text_of(cell_after(nb, "%agent metrics"))
    assert "4 runs, 4 completed" in text_of(cell_after(nb, "%agent metrics"))
    assert "> Where were we?" in text_of(cell_after(nb, "%agent history 2"))
    transcript = (work / "quickstart-transcript.md").read_text(encoding="utf-8")
    assert transcript.startswith("# quickstart") and "Where were we?" in transcript
    assert text_of(cell_after(nb, "from pathlib import Path")).startswith("# quickstart")

    # Run all again, as after a kernel restart: names stay unique, so the re-run's new session says so.
    again = nbformat.read(work / "quickstart.ipynb", as_version=4)
    NotebookClient(again, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    assert not any(o["output_type"] == "error" for c in again.cells for o in c.get("outputs", []))
    assert "'quickstart' is taken" in text_of(cell_after(again, "%%agent --new quickstart"))
    assert text_of(cell_after(again, "%agent use quickstart")).startswith("active session: quickstart (")
