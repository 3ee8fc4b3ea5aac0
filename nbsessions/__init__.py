"""nbsessions: agent sessions in Jupyter — runs, history, state and metrics that survive kernel restarts."""

from nbsessions.db import BaseDb, InMemoryDb, TinyDb
from nbsessions.llm import FunctionModel, Model, OfflineModel, OpenAIChat, OpenAIResponses, Usage
from nbsessions.llm.prices import set_price
from nbsessions.records.errors import (
    CorruptDatabaseError,
    ModelError,
    NbSessionsError,
    SessionAccessError,
    SessionNotFoundError,
    StorageError,
)
from nbsessions.records.events import RunEvent
from nbsessions.records.requirement import RunRequirement, ToolExecution, UserInputField
from nbsessions.records.schema import Message, Metrics, RunOutput, RunStatus, Session, SessionSummary, StepRecord
from nbsessions.runs.agent import Agent
from nbsessions.runs.core.streams import AsyncRunStream, RunStream
from nbsessions.runs.core.tools import RunContext, Tool, make_tool, tool, update_session_state
from nbsessions.runs.summary import SessionSummaryManager
from nbsessions.runs.team import Team, TeamMode
from nbsessions.runs.workflows.blocks import Condition, Loop, Parallel, Router, Steps
from nbsessions.runs.workflows.workflow import Step, StepInput, StepOutput, Workflow, WorkflowAgent, WorkflowError

__version__ = "0.1.0"

__all__ = [
    "Agent", "AsyncRunStream", "BaseDb", "Condition", "CorruptDatabaseError", "FunctionModel", "InMemoryDb", "Loop",
    "Message", "Metrics", "Model", "ModelError", "NbSessionsError", "OfflineModel", "OpenAIChat", "OpenAIResponses",
    "Parallel", "PostgresDb", "RunContext", "RunEvent", "RunOutput", "RunRequirement", "Router", "RunStatus",
    "RunStream", "Session", "SessionAccessError", "SessionNotFoundError", "SessionSummary", "SessionSummaryManager",
    "Step", "StepInput", "StepOutput", "StepRecord", "Steps", "StorageError", "Team", "TeamMode", "TinyDb", "Tool",
    "ToolExecution", "Usage", "UserInputField", "Workflow", "WorkflowAgent", "WorkflowError", "make_tool",
    "set_price", "tool", "update_session_state",
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
