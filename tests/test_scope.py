"""Which DB file a notebook uses, and the reason given for it."""

from __future__ import annotations

from pathlib import Path

from nbsessions.magic.scope import db_path_for, default_location, find_notebook, locate_db


def test_db_file_is_named_after_the_notebook_beside_it(tmp_path):
    assert db_path_for(tmp_path / "analysis.ipynb") == tmp_path / "analysis.nbsessions.json"


def test_jupyter_server_gives_the_notebook_path(tmp_path):
    nb = tmp_path / "work" / "analysis.ipynb"
    nb.parent.mkdir()
    loc = default_location({}, {"JPY_SESSION_NAME": str(nb)}, cwd=tmp_path)
    assert loc.path == tmp_path / "work" / "analysis.nbsessions.json"
    assert loc.notebook == nb
    assert "JPY_SESSION_NAME" in loc.reason and "analysis.ipynb" in loc.reason


def test_a_relative_jupyter_path_resolves_in_the_kernels_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nb.ipynb").write_text("{}")
    # Relative to the working directory when that file exists there...
    assert default_location({}, {"JPY_SESSION_NAME": "sub/nb.ipynb"}, cwd=tmp_path).path == \
        tmp_path / "sub" / "nb.nbsessions.json"
    # ...else relative to the server root, while the kernel runs in the notebook's folder.
    here = tmp_path / "sub"
    assert default_location({}, {"JPY_SESSION_NAME": "projects/sub/nb.ipynb"}, cwd=here).path == \
        here / "nb.nbsessions.json"


def test_vscode_gives_the_notebook_path_in_the_user_namespace(tmp_path):
    nb = tmp_path / "nb.ipynb"
    loc = default_location({"__vsc_ipynb_file__": str(nb)}, {}, cwd=tmp_path / "elsewhere")
    assert loc.path == tmp_path / "nb.nbsessions.json"
    assert "__vsc_ipynb_file__" in loc.reason


def test_a_path_from_another_machine_is_ignored(tmp_path):
    vsc = tmp_path / "local.ipynb"
    found = find_notebook({"__vsc_ipynb_file__": str(vsc)}, {"JPY_SESSION_NAME": "/no/such/dir/remote.ipynb"},
                          cwd=tmp_path)
    assert found is not None and found[0] == vsc


def test_consoles_are_not_notebooks(tmp_path):
    loc = default_location({}, {"JPY_SESSION_NAME": str(tmp_path / "console-1-abc")}, cwd=tmp_path)
    assert loc.path == tmp_path / "nbsessions.json"


def test_without_a_notebook_the_db_is_in_the_working_directory_and_says_why(tmp_path):
    loc = default_location({}, {}, cwd=tmp_path)
    assert loc.path == tmp_path / "nbsessions.json"
    assert loc.notebook is None
    assert "working directory" in loc.reason and "JPY_SESSION_NAME" in loc.reason


def test_a_configured_path_wins_and_keeps_the_notebook(tmp_path):
    nb = tmp_path / "nb.ipynb"
    loc = locate_db("data/my.json", reason="set with %agent db", user_ns={"__vsc_ipynb_file__": str(nb)},
                    environ={}, cwd=tmp_path)
    assert loc.path == tmp_path / "data" / "my.json"
    assert loc.reason == "set with %agent db"
    assert loc.notebook == nb
    assert locate_db("", user_ns={}, environ={}, cwd=tmp_path).path == tmp_path / "nbsessions.json"


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert locate_db("~/x.json", environ={}, cwd=Path("/")).path == tmp_path / "x.json"
