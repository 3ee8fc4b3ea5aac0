"""Every import path the README shows users still works, whatever the package's inner layout.

The README is read, not copied: a path added to it is tested here without editing this file.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nbsessions

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
# Dotted names in the README that are not Python paths: a file suffix, a PostgreSQL table, a logger.
NOT_PYTHON = {"nbsessions.json", "nbsessions.schema_version", "nbsessions.debug"}
FROM_IMPORT = re.compile(r"from\s+(nbsessions(?:\.\w+)*)\s+import\s+(\w+(?:\s*,\s*\w+)*)")
DOTTED = re.compile(r"(?<![\w.\-/])nbsessions(?:\.[A-Za-z_]\w*)+")
AGNO_PATHS = ["events", "workflow"]
# Agno's names from agno.tools, agno.team, agno.session and agno.run.requirement: imported from ``nbsessions`` itself.
FROM_THE_PACKAGE = ["RunContext", "Tool", "make_tool", "tool", "update_session_state", "Team", "TeamMode",
                    "SessionSummary", "SessionSummaryManager", "RunRequirement", "ToolExecution", "UserInputField"]


def _from_imports() -> list[tuple[str, str]]:
    found = {(module, name.strip()) for module, names in FROM_IMPORT.findall(README) for name in names.split(",")}
    return sorted(found)


def _dotted() -> list[str]:
    return sorted(set(DOTTED.findall(README)) - NOT_PYTHON)


def _resolve(dotted: str) -> object:
    """The longest importable module prefix, then attributes: ``nbsessions.set_price`` is an attribute."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(dotted)


def test_the_readme_shows_imports_to_check():
    """The readers below found the README's paths (an empty list would make every test below pass vacuously)."""
    modules = {module for module, _ in _from_imports()}
    assert {"nbsessions", "nbsessions.workflow", "nbsessions.events", "nbsessions.explore"} <= modules
    assert {"nbsessions.db", "nbsessions.llm", "nbsessions.set_price"} <= set(_dotted())


@pytest.mark.parametrize(("module", "name"), _from_imports())
def test_every_from_import_in_the_readme_works(module, name):
    assert getattr(importlib.import_module(module), name) is not None


@pytest.mark.parametrize("dotted", _dotted())
def test_every_dotted_path_in_the_readme_resolves(dotted):
    assert _resolve(dotted) is not None


@pytest.mark.parametrize("name", nbsessions.__all__)
def test_every_name_the_package_exports_resolves(name):
    assert getattr(nbsessions, name) is not None


@pytest.mark.parametrize("path", AGNO_PATHS)
def test_agno_paths_re_export_the_objects_themselves(path):
    """``nbsessions.workflow.Workflow`` is the class in ``runs/`` (isinstance checks and pickles agree), not a copy."""
    module = importlib.import_module(f"nbsessions.{path}")
    assert module.__all__
    for name in module.__all__:
        value = getattr(module, name)
        if callable(value):
            assert value.__module__.startswith(("nbsessions.records.", "nbsessions.runs.")), name


@pytest.mark.parametrize("name", FROM_THE_PACKAGE)
def test_agno_names_without_a_module_of_their_own_import_from_the_package(name):
    """``from nbsessions import TeamMode`` gives the class in ``runs/`` and is listed in ``__all__`` (star imports)."""
    assert name in nbsessions.__all__
    assert getattr(nbsessions, name).__module__.startswith(("nbsessions.records.", "nbsessions.runs.")), name


def test_agno_paths_load_in_a_fresh_interpreter():
    """Imported first thing in a new process (no earlier ``import nbsessions`` warming the modules)."""
    code = "; ".join(f"import nbsessions.{path}" for path in AGNO_PATHS) + "; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
