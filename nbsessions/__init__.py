"""nbsessions: agent sessions in Jupyter — runs, history, state and metrics that survive kernel restarts."""

from nbsessions.agent import Agent
from nbsessions.db import BaseDb, InMemoryDb, TinyDb
from nbsessions.errors import (
    CorruptDatabaseError,
    ModelError,
    NbSessionsError,
    SessionAccessError,
    SessionNotFoundError,
    StorageError,
)
from nbsessions.events import RunEvent
from nbsessions.llm import FunctionModel, Model, OfflineModel, OpenAIChat, OpenAIResponses, Usage
from nbsessions.llm.prices import set_price
from nbsessions.schema import Message, Metrics, RunOutput, RunStatus, Session, StepRecord
from nbsessions.streams import AsyncRunStream, RunStream
from nbsessions.team import Team
from nbsessions.tools import RunContext, tool
from nbsessions.workflow import Step, StepInput, StepOutput, Workflow, WorkflowAgent, WorkflowError

__version__ = "0.1.0"

__all__ = [
    "Agent", "AsyncRunStream", "BaseDb", "CorruptDatabaseError", "FunctionModel", "InMemoryDb", "Message",
    "Metrics", "Model", "OpenAIChat", "OpenAIResponses", "PostgresDb", "TinyDb",
    "ModelError", "NbSessionsError", "OfflineModel", "RunEvent", "RunOutput", "RunStatus", "RunStream", "Session",
    "RunContext", "SessionAccessError", "SessionNotFoundError", "Step", "StepInput", "StepOutput", "StepRecord",
    "StorageError",
    "Team", "Usage",
    "Workflow", "WorkflowAgent", "WorkflowError", "set_price", "tool",
]


def __getattr__(name: str):
    """``PostgresDb`` is imported on first use (it brings psycopg)."""
    if name == "PostgresDb":
        from nbsessions.db.postgres import PostgresDb

        return PostgresDb
    raise AttributeError(f"module 'nbsessions' has no attribute {name!r}")


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt "Agent sessions" sidebar (``jupyter labextension develop`` links it; a wheel installs it)."""
    return [{"src": "labextension", "dest": "nbsessions"}]


def load_ipython_extension(ipython) -> None:
    """``%load_ext nbsessions``: registers ``%%agent`` / ``%agent`` (IPython is imported only now)."""
    from nbsessions.magic.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from nbsessions.magic.magics import unload_ipython_extension as unload

    unload(ipython)
