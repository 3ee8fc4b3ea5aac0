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


def _methods_written_in(path: Path) -> set[str]:
    """Names defined with ``def`` / ``async def`` in the bodies of the module's classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {item.name for node in tree.body if isinstance(node, ast.ClassDef) for item in node.body
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_the_agent_is_one_class_whose_every_method_is_written_out():
    """No mixins reaching across with stubs, no methods made with ``setattr``: an IDE finds each one's ``def``."""
    from nbsessions import Agent, Team, Workflow
    from nbsessions.runs.session_api import SessionsApi

    assert Agent.__mro__ == (Agent, SessionsApi, object)
    assert Team.__mro__[1:] == Agent.__mro__
    assert Workflow.__mro__[1:] == (SessionsApi, object)
    written = _methods_written_in(PACKAGE / "runs" / "agent.py") | _methods_written_in(
        PACKAGE / "runs" / "session_api.py")
    public = {name for name in dir(Agent) if not name.startswith("_")}
    assert public - written == set()
    assert len(public) <= 55  # Agno's methods, their 15 async twins and a few of nbsessions' own


def test_each_async_getter_is_its_sync_getter_s_twin():
    import inspect

    from nbsessions.runs.session_api import SessionsApi

    twins = [name for name in vars(SessionsApi) if name.startswith("a") and name[1:] in vars(SessionsApi)]
    assert len(twins) == 15
    for name in twins:
        sync, twin = getattr(SessionsApi, name[1:]), getattr(SessionsApi, name)
        assert inspect.iscoroutinefunction(twin), name
        assert list(inspect.signature(twin).parameters.values()) == \
            list(inspect.signature(sync).parameters.values()), name


def test_the_run_engine_reaches_nothing_through_stubs_or_getattr():
    """The pieces of a run declare what they read (protocols), instead of stubs under ``TYPE_CHECKING``."""
    offenders = []
    for path in sorted((PACKAGE / "runs").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING" \
                    and any(isinstance(n, ast.FunctionDef) for n in node.body):
                offenders.append(f"{path.name}:{node.lineno} stub")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"getattr", "setattr"} \
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "self" \
                    and isinstance(node.args[1], ast.Constant):  # a name spelled out: reaching across
                offenders.append(f"{path.name}:{node.lineno} {node.func.id}(self, ...)")
    assert offenders == []


def test_the_agent_s_init_is_short():
    """Agno's keyword list lives in ``AgentOptions``; the constructor only checks and wires."""
    tree = ast.parse((PACKAGE / "runs" / "agent.py").read_text(encoding="utf-8"))
    init = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert init.end_lineno - init.body[1].lineno + 1 <= 25
