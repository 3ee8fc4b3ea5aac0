"""A store chosen in the kernel (``%agent db PATH``, ``AgentMagics.db_path``) is what the sidebar's server lists:
the magic records the file beside the notebook (``db/locate.py``'s pointer), the server follows it only inside its
root, symlinks included, and opens the file read-only; back on the default, the record goes."""

from __future__ import annotations

import json
import os
import stat

import pytest
from notebook_shell import Notebook

from nbsessions import TinyDb
from nbsessions.db.locate import db_path_for, pointer_path_for
from nbsessions.magic.scope import DbLocation, record_choice
from server_api.test_sidebar_api import fill, get, status_of, write_notebook


@pytest.fixture
def kernel(jp_root_dir, monkeypatch):
    """A real IPython shell with nbsessions loaded, serving ``work/analysis.ipynb`` as Jupyter tells a kernel."""
    notebook = write_notebook(jp_root_dir / "work")
    for name in ("NBSESSIONS_DB_URL", "OPENAI_API_KEY", "NBSESSIONS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    monkeypatch.chdir(notebook.parent)
    with TinyDb(db_path_for(notebook)) as db:  # the default store already has a session
        fill(db)
    shell = Notebook()
    yield shell, notebook
    shell.close()


async def names(jp_fetch) -> tuple[str, list[str]]:
    body = await get(jp_fetch, "sessions", path="work/analysis.ipynb")
    return body["store"]["label"], [s["name"] for s in body["sessions"]]


async def test_a_file_chosen_with_agent_db_is_what_the_server_lists_until_the_default_is_chosen_again(
        jp_fetch, jp_root_dir, kernel):
    shell, notebook = kernel
    assert await names(jp_fetch) == ("analysis.nbsessions.json", ["plots", "pandas help"])
    assert shell.run("%agent db ../stores/chosen.json").result.success
    assert shell.run("%agent new chosen-one").result.success
    pointer = pointer_path_for(notebook)
    assert json.loads(pointer.read_text()) == {"version": 1, "db_path": "../stores/chosen.json"}  # a path only
    assert stat.S_IMODE(pointer.stat().st_mode) == 0o600
    assert await names(jp_fetch) == ("chosen.json", ["chosen-one"])

    assert shell.run("%agent db --default").result.success
    assert not pointer.exists()
    assert await names(jp_fetch) == ("analysis.nbsessions.json", ["plots", "pandas help"])

    shell.run("%config AgentMagics.db_path = 'config.json'")
    assert shell.run("%agent new configured").result.success
    assert json.loads(pointer.read_text())["db_path"] == "config.json"
    assert await names(jp_fetch) == ("config.json", ["configured"])
    shell.run("%config AgentMagics.db_path = ''")
    assert shell.run("%agent db").result.success
    assert not pointer.exists()


def test_a_database_url_is_never_recorded_and_removes_a_file_choice(tmp_path):
    notebook = tmp_path / "analysis.ipynb"
    record_choice(DbLocation(tmp_path / "other.json", "set by the user", notebook))
    assert pointer_path_for(notebook).exists()
    url = "postgresql://ada:s3cret-pass@db.example.org/team"
    record_choice(DbLocation(db_path_for(notebook), "set by the user", notebook, url=url))
    assert not pointer_path_for(notebook).exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_kernel_that_does_not_know_its_notebook_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    shell = Notebook()
    try:
        assert shell.run("%agent db chosen.json").result.success
    finally:
        shell.close()
    assert (tmp_path / "chosen.json").exists() and not list(tmp_path.glob("*nbsessions-store*"))


def point(notebook, target: str) -> None:
    pointer_path_for(notebook).write_text(json.dumps({"version": 1, "db_path": target}))


@pytest.mark.parametrize("target", ["../../outside/secret.json", "ABSOLUTE", "link/secret.json", "../link/secret.json",
                                    "POINTER_LINK", ".."])
async def test_a_pointer_that_resolves_outside_the_root_is_refused(jp_fetch, jp_root_dir, target):
    outside = jp_root_dir.parent / "outside"
    outside.mkdir()
    with TinyDb(outside / "secret.json") as db:
        fill(db)
    notebook = write_notebook(jp_root_dir / "work")
    (jp_root_dir / "work" / "link").symlink_to(outside, target_is_directory=True)
    (jp_root_dir / "link").symlink_to(outside, target_is_directory=True)
    if target == "POINTER_LINK":  # the pointer itself a symlink to one outside that names a file beside it
        (outside / "pointer.json").write_text(json.dumps({"version": 1, "db_path": "link/secret.json"}))
        pointer_path_for(notebook).symlink_to(outside / "pointer.json")
    else:
        point(notebook, str(outside / "secret.json") if target == "ABSOLUTE" else target)
    for endpoint in ("sessions", "version"):
        code, body = await status_of(jp_fetch, endpoint, path="work/analysis.ipynb")
        assert code == 403 and "pandas" not in json.dumps(body) and str(outside) not in body["message"]


async def test_a_chosen_file_is_opened_read_only_and_a_missing_one_lists_nothing(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir / "work")
    stores = jp_root_dir / "stores"
    stores.mkdir()
    with TinyDb(stores / "chosen.json") as db:
        fill(db)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in stores.iterdir()}
    point(notebook, "../stores/chosen.json")
    assert len((await get(jp_fetch, "sessions", path="work/analysis.ipynb"))["sessions"]) == 2
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in stores.iterdir()} == before
    point(notebook, "../stores/none-yet.json")
    body = await get(jp_fetch, "sessions", path="work/analysis.ipynb")
    assert body["sessions"] == [] and body["version"] == "none" and not (stores / "none-yet.json").exists()


@pytest.mark.parametrize("content", ["{broken", json.dumps({"db_path": 7}), json.dumps(["x"]),
                                     json.dumps({"db_path": "x" * 5000})])
async def test_a_pointer_that_is_not_one_is_one_line_of_error(jp_fetch, jp_root_dir, content):
    notebook = write_notebook(jp_root_dir)
    pointer_path_for(notebook).write_text(content)
    code, body = await status_of(jp_fetch, "sessions", path="analysis.ipynb")
    assert code == 500 and body["message"].startswith(
        "cannot read the sessions: analysis.nbsessions-store.json is not a store pointer")
    assert "\n" not in body["message"] and os.path.exists(pointer_path_for(notebook))
