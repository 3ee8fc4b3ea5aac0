"""The package's shape stays what the README's architecture section says: layers as packages, short pieces.

``lint-imports`` checks the direction of imports; this checks what it cannot: what sits at the top level, that
Agno's import paths only re-export, and that no function body is longer than a screen.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nbsessions"
LAYERS = {"records", "runs", "presentation", "llm", "db", "magic", "panel", "explore", "server"}
AGNO_PATHS = {"events.py", "workflow.py"}  # the rest of Agno's names import from ``nbsessions`` itself
BUILT = {"labextension", "__pycache__"}  # the sidebar's prebuilt JavaScript (gitignored), bytecode


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_top_level_is_the_layers_the_agno_paths_and_the_entry_points():
    entries = {p.name for p in PACKAGE.iterdir()} - BUILT
    assert entries == LAYERS | AGNO_PATHS | {"__init__.py", "__main__.py"}
    assert all((PACKAGE / layer / "__init__.py").is_file() for layer in LAYERS)


def test_agno_paths_only_re_export():
    """Code added to ``nbsessions/workflow.py`` would be code outside the layers: it belongs in ``runs/``."""
    for name in sorted(AGNO_PATHS):
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        body = tree.body[1:] if ast.get_docstring(tree) else tree.body
        kinds = {type(node).__name__ for node in body}
        assert kinds <= {"ImportFrom", "Assign"}, (name, kinds)
        assert all(node.module.startswith(("nbsessions.records.", "nbsessions.runs."))
                   for node in body if isinstance(node, ast.ImportFrom)), name


def test_no_function_body_is_over_60_lines():
    """Docstrings excluded: a function longer than a screen does more than one thing."""
    long_functions = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = node.body[1] if ast.get_docstring(node) and len(node.body) > 1 else node.body[0]
                if node.end_lineno - first.lineno + 1 > 60:
                    long_functions.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert long_functions == []
