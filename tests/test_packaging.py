"""What a user installs carries the sidebar: a built wheel holds the prebuilt JupyterLab extension and the server
extension's config as data files, and both a plain ``pip install`` of it and an editable install (README's first
command) show ``nbsessions`` enabled and OK in ``jupyter labextension list`` / ``jupyter server extension list``.

Each install goes into a fresh virtual environment (``--system-site-packages``, for the dependencies), built
without build isolation from the dev extras' hatchling and hatch-jupyter-builder; ``.ci/run`` builds the front end
(``npm ci && npm run build:prod`` in ``js/``) first, so no npm step runs here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = "nbsessions-0.1.0.data/data/"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def built():
    """The prebuilt extension must exist: the packaging tests do not run npm."""
    pytest.importorskip("hatchling")
    pytest.importorskip("hatch_jupyter_builder")
    pytest.importorskip("editables")
    if not (REPO / "nbsessions" / "labextension" / "package.json").exists():
        pytest.fail("the sidebar is not built: run `npm ci && npm run build:prod` in js/ (as .ci/run does)")


def clean_env(tmp: Path) -> dict[str, str]:
    """No PYTHONPATH pointing at a checkout, and config/data dirs of our own."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               HATCH_JUPYTER_BUILDER_SKIP_NPM="1")
    return env


def run(*command: str | Path, env: dict[str, str], cwd: Path = REPO) -> str:
    done = subprocess.run([str(c) for c in command], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return ANSI.sub("", done.stdout + done.stderr)


def venv(tmp: Path) -> Path:
    run(sys.executable, "-m", "venv", "--system-site-packages", tmp / "venv", env=clean_env(tmp))
    return tmp / "venv" / "bin" / "python"


def assert_enabled(python: Path, tmp: Path) -> None:
    prefix = python.parent.parent
    env = clean_env(tmp)
    labextensions = run(python, "-m", "jupyterlab.labextensions", "list", env=env, cwd=tmp)
    assert f"{prefix}/share/jupyter/labextensions" in labextensions
    assert re.search(r"nbsessions v0\.1\.0 enabled OK \(python, nbsessions\)", labextensions), labextensions
    servers = run(python, "-m", "jupyter_server.extension.serverextension", "list", env=env, cwd=tmp)
    section = servers.split(f"Config dir: {prefix}/etc/jupyter", 1)[1].split("Config dir:", 1)[0]
    assert "nbsessions.server enabled" in section, servers
    assert re.search(r"nbsessions\.server 0\.1\.0 OK", section), servers


def test_a_wheel_carries_the_prebuilt_sidebar_and_the_server_config(built, tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", ".",
        env=clean_env(tmp_path))
    (wheel,) = (tmp_path / "dist").glob("nbsessions-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        config = json.loads(archive.read(DATA + "etc/jupyter/jupyter_server_config.d/nbsessions.json"))
        lab = json.loads(archive.read(DATA + "share/jupyter/labextensions/nbsessions/package.json"))
    assert config == {"ServerApp": {"jpserver_extensions": {"nbsessions.server": True}}}
    assert lab["name"] == "nbsessions"
    assert DATA + "share/jupyter/labextensions/nbsessions/" + lab["jupyterlab"]["_build"]["load"] in names
    assert DATA + "share/jupyter/labextensions/nbsessions/install.json" in names
    assert {"nbsessions/server/handlers.py", "nbsessions/server/stores.py"} <= names
    assert not [n for n in names if n.startswith(("js/", "tests/", "nbsessions/labextension/"))]

    python = venv(tmp_path)
    run(python, "-m", "pip", "install", "--no-deps", "-q", wheel, env=clean_env(tmp_path))
    assert_enabled(python, tmp_path)


def test_the_editable_install_shows_the_sidebar_and_the_server_extension(built, tmp_path):
    python = venv(tmp_path)
    run(python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "-e", ".", env=clean_env(tmp_path))
    assert_enabled(python, tmp_path)
    where = run(python, "-c", "import nbsessions.server; print(nbsessions.server.__file__)", env=clean_env(tmp_path),
                cwd=tmp_path)
    assert where.strip() == str(REPO / "nbsessions" / "server" / "__init__.py")
