"""Plain records of sessions and runs.

Every record round-trips through JSON with ``to_dict`` / ``from_dict``; unknown keys from a newer file are kept
out of the object but never cause a crash, and a missing required key raises ``ValueError`` naming it.

Stores keep a run's history as references (``RunOutput.to_dict(history_refs=True)``, see ``stored_history``), and
the exact context a run sent is rebuilt from the referenced runs (``RunOutput.from_dict(data, sources)``).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from nbsessions.records.metrics import Metrics
from nbsessions.records.redact import redact, redact_data
from nbsessions.records.requirement import RunRequirement, ToolExecution, linked_tools, stored_requirement
from nbsessions.records.stored_history import resolved_messages, stored_messages
from nbsessions.records.transcript import session_messages


def _redacted_repr(record: Any) -> str:
    """The dataclass repr with secrets redacted: a record shown in a notebook (the value of a cell) is an output."""
    shown = ", ".join(f"{f.name}={getattr(record, f.name)!r}" for f in dataclass_fields(record) if f.repr)
    return redact(f"{type(record).__name__}({shown})")


def new_id() -> str:
    """A fresh uuid4 string: ids are made on the client so two writers never collide."""
    return str(uuid.uuid4())


def now() -> float:
    return time.time()


class RunStatus(str, Enum):
    pending = "pending"
    running = "running"
    completed = "completed"
    paused = "paused"
    cancelled = "cancelled"
    error = "error"
    interrupted = "interrupted"  # was running when its process died; never stored, decided when read


def _pick(cls: type, data: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{cls.__name__} record is missing {', '.join(missing)}")
    names = cls.__dataclass_fields__  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in names}


def _copied(value: Any) -> Any:
    """Free-form parts (tool calls, state) are copied, so a stored record never aliases a live one."""
    return copy.deepcopy(value) if value else value


@dataclass
class Message:
    role: str
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    from_history: bool = False
    origin: tuple[str, int] | None = field(default=None, compare=False, repr=False)
    """For a history message: (run_id, index among that run's own messages), so a store can keep a reference."""

    __repr__ = _redacted_repr

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, "tool_calls": _copied(self.tool_calls),
                "tool_call_id": self.tool_call_id, "from_history": self.from_history}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        kwargs = _pick(cls, data, ("role",))
        kwargs.pop("origin", None)  # only set in memory, from where the message was taken
        return cls(**kwargs)

    def copy(self, **changes: Any) -> Message:
        """A copy that keeps ``origin`` (``from_dict(to_dict())`` drops it, and with it the stored reference)."""
        fields = {"role": self.role, "content": self.content, "tool_calls": _copied(self.tool_calls),
                  "tool_call_id": self.tool_call_id, "from_history": self.from_history, "origin": self.origin}
        return Message(**{**fields, **changes})


def _with_origin(message: Message, origin: tuple[str, int] | None) -> Message:
    """A message read from a store, told where it came from. No second copy: a store's records are private copies
    already, and the messages taken from other runs were copied as they were resolved."""
    message.origin = origin
    return message


@dataclass
class StepOutput:
    """Agno's ``StepOutput``: what one workflow step produced (a function step may return one)."""

    step_name: str | None = None
    content: Any = None
    success: bool = True
    error: str | None = None
    stop: bool = False  # end the workflow after this step
    step_type: str | None = None
    executor_name: str | None = None
    step_run_id: str | None = None
    metrics: Metrics | None = None  # an agent or team step's run metrics (a function step has none)
    executor_type: str | None = None
    steps: list[StepOutput] | None = None  # a Parallel, Condition, Loop, Router or Steps block's inner outputs
    step_id: str | None = None


@dataclass
class StepRecord:
    """One step of a stored workflow run: what it was given, how it ended, and its own run if it made one."""

    name: str | None = None
    kind: str | None = None  # agent | team | function
    input: str | None = None
    status: RunStatus = RunStatus.running
    output: str | None = None
    error: str | None = None
    run_id: str | None = None  # an agent or team step's run, nested under the workflow run
    metrics: dict[str, Any] | None = None  # that run's metrics, as ``Metrics.to_dict``
    attempts: int | None = None  # when the step was tried more than once (``Step(max_retries=...)``)

    def to_dict(self) -> dict[str, Any]:
        """The dict shape stored since before this record: the parts a step has not got yet are left out."""
        data = {"name": self.name, "kind": self.kind, "input": self.input, "status": self.status.value}
        data.update({k: v for k, v in (("run_id", self.run_id), ("output", self.output), ("error", self.error),
                                       ("metrics", self.metrics), ("attempts", self.attempts)) if v is not None})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        kwargs = _pick(cls, data)
        kwargs["status"] = RunStatus(kwargs.get("status", RunStatus.running))
        return cls(**kwargs)


def stored_step(step: StepRecord | dict[str, Any]) -> StepRecord:
    """A step as given: a record stays itself, a dict (from storage or from older code) becomes a record."""
    return step if isinstance(step, StepRecord) else StepRecord.from_dict(step)


AGNO_PROVIDERS = {"openai": "OpenAI"}
_ABSENT_WHEN_NONE = ("agent_id", "team_id", "workflow_id", "metadata")


def whole_seconds() -> int:
    """Agno's ``RunOutput.created_at``: whole epoch seconds (runs are ordered by storage, never by this)."""
    return int(time.time())


@dataclass
class RunOutput:
    run_id: str = field(default_factory=new_id)
    session_id: str = ""
    user_id: str | None = None
    created_at: int = field(default_factory=whole_seconds)
    status: RunStatus = RunStatus.pending
    input: str = ""
    content: str = ""
    messages: list[Message] = field(default_factory=list)
    model: str | None = None
    provider: str | None = None
    model_origin: dict[str, str] | None = None  # Model.origin(): how to reach the model again, never a key
    metrics: Metrics = field(default_factory=Metrics)
    error: str | None = None
    cell_id: str | None = None
    execution_count: int | None = None
    superseded_by: str | None = None
    variant_of: str | None = None  # regenerated runs: the first run of the slot they are variants of
    agent_name: str | None = None  # the agent (or team member) that made the run
    agent_id: str | None = None
    team_id: str | None = None  # a team's run: the team's id (Agno's ``TeamRunOutput.team_id``)
    workflow_id: str | None = None
    content_type: str = "str"
    metadata: dict[str, Any] | None = None  # the agent's and the run's ``metadata=`` (Agno's run metadata)
    parent_run_id: str | None = None  # a team member's run, or a workflow step's run, nests under this run
    kind: str = "agent"  # agent | team | workflow
    steps: list[StepRecord] = field(default_factory=list)  # a workflow run's steps, in order
    tags: list[str] = field(default_factory=list)
    requirements: list[RunRequirement] = field(default_factory=list)  # what a paused run waits for
    tools: list[ToolExecution] = field(default_factory=list)  # every tool call of the run, executed or waiting
    # set by a team on its runs: member runs are read from the store when asked for
    _load_members: Callable[[], list[RunOutput]] | None = field(default=None, init=False, repr=False, compare=False)
    tools_offered: list[str] = field(default_factory=list)  # names of the tools the model was given
    writer: dict[str, Any] | None = None  # a running run's process (liveness.current_writer), to tell a dead one

    __repr__ = _redacted_repr

    @property
    def is_history(self) -> bool:
        """Only completed top-level runs that no re-run replaced may enter a later run's context."""
        return self.status == RunStatus.completed and self.superseded_by is None and self.parent_run_id is None

    def __post_init__(self) -> None:
        """Requirements and steps given as dicts (stored, or from another process) become records."""
        self.requirements = [r if isinstance(r, RunRequirement) else stored_requirement(r) for r in self.requirements]
        self.steps = [stored_step(s) for s in self.steps]
        if self.tools or self.requirements:
            self.tools = linked_tools(self.tools, self.requirements)

    @property
    def model_provider(self) -> str | None:
        """``provider`` as Agno names it ("OpenAI" for the OpenAI models; ours keep their own names)."""
        return AGNO_PROVIDERS.get(self.provider or "", self.provider)

    @property
    def member_responses(self) -> list[RunOutput]:
        """A team run's member runs, in order (Agno's ``TeamRunOutput.member_responses``)."""
        return self._load_members() if self._load_members is not None else []

    @property
    def step_results(self) -> list[StepOutput]:
        """A workflow run's steps as ``StepOutput`` records, in order (Agno's ``WorkflowRunOutput.step_results``)."""
        return [StepOutput(step_name=s.name, content=s.output, success=s.status == RunStatus.completed,
                           error=s.error, step_type=s.kind, executor_type=s.kind, step_run_id=s.run_id,
                           metrics=Metrics.from_dict(s.metrics) if s.metrics is not None else None)
                for s in self.steps]

    @property
    def is_paused(self) -> bool:
        return self.status == RunStatus.paused

    @property
    def active_requirements(self) -> list[RunRequirement]:
        """What the paused run still waits for: requirements not answered yet."""
        return [r for r in self.requirements if not r.is_resolved()]

    @property
    def tools_requiring_confirmation(self) -> list[ToolExecution]:
        return [t for t in self.tools if t.requires_confirmation]

    @property
    def tools_requiring_user_input(self) -> list[ToolExecution]:
        return [t for t in self.tools if t.requires_user_input]

    @property
    def tools_awaiting_external_execution(self) -> list[ToolExecution]:
        return [t for t in self.tools if t.external_execution_required]

    def to_dict(self, *, history_refs: bool = False) -> dict[str, Any]:
        """Built by hand: ``dataclasses.asdict`` deep-copies everything and was the main cost of storing a run.

        ``history_refs=True`` is the form stores keep: history messages as references to the runs they came from.
        """
        data = dict(self.__dict__)
        data.pop("_load_members", None)
        data["status"] = self.status.value
        data["messages"] = (stored_messages(self.messages, self.input) if history_refs
                            else [m.to_dict() for m in self.messages])
        data["metrics"] = self.metrics.to_dict()
        data["tags"] = list(self.tags)
        if self.tools_offered:
            data["tools_offered"] = list(self.tools_offered)
        else:
            del data["tools_offered"]  # most runs offer no tools: no bytes for them
        if self.writer is None:
            del data["writer"]
        if self.model_origin is None:
            del data["model_origin"]
        data["requirements"] = [r.to_dict() for r in self.requirements] if self.requirements else []
        data["steps"] = [s.to_dict() for s in self.steps] if self.steps else []
        if self.tools:
            waiting = {r.tool_call_id for r in self.requirements}  # stored once, in its requirement
            data["tools"] = [t.to_dict() for t in self.tools if t.tool_call_id not in waiting]
        if not self.tools or not data["tools"]:
            del data["tools"]
        for name in _ABSENT_WHEN_NONE:
            if data[name] is None:
                del data[name]  # no bytes for what most runs have not got
        if self.metadata is not None:
            data["metadata"] = _copied(self.metadata)
        if self.content_type == "str":
            del data["content_type"]  # the default, as Agno's runs are text
        return redact_data(data)  # what leaves the object is kept or shown somewhere: never a secret

    @classmethod
    def from_dict(cls, data: dict[str, Any], sources: dict[str, list[dict[str, Any]]] | None = None) -> RunOutput:
        """``sources`` maps each referenced run id to its ``own_message_dicts`` (see the module docstring)."""
        kwargs = _pick(cls, data, ("run_id", "session_id"))
        kwargs["status"] = RunStatus(kwargs.get("status", RunStatus.pending))
        kwargs["messages"] = [_with_origin(Message.from_dict(m), origin)
                              for m, origin in resolved_messages(data, sources or {})]
        kwargs["metrics"] = Metrics.from_dict(kwargs.get("metrics"))
        kwargs["tags"] = list(kwargs.get("tags") or [])
        kwargs["requirements"] = list(kwargs.get("requirements") or [])
        kwargs["steps"] = [s for s in kwargs.get("steps") or [] if isinstance(s, dict)]  # junk never breaks a read
        kwargs["tools_offered"] = list(kwargs.get("tools_offered") or [])
        kwargs["tools"] = [t for t in kwargs.get("tools") or [] if isinstance(t, dict)]
        created = kwargs.get("created_at")
        if isinstance(created, float):  # stored as float seconds before it was Agno's whole seconds
            kwargs["created_at"] = int(created)
        return cls(**kwargs)


EXPERIMENT_KEY = "experiment"  # Session.metadata: made by compare / batch (see Session.experiment)
SUMMARY_THROUGH_KEY = "summary_through"  # Session.metadata: the newest run a summary covers, topics, when written


@dataclass
class SessionSummary:
    """Agno's ``SessionSummary``: the running summary of a session, its topics and when it was written."""

    summary: str
    topics: list[str] | None = None
    updated_at: datetime | None = None


@dataclass
class Session:
    session_id: str = field(default_factory=new_id)
    session_name: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    created_at: float = field(default_factory=now)
    updated_at: float = field(default_factory=now)
    session_state: dict[str, Any] = field(default_factory=dict)
    summary: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    notebook: str | None = None
    forked_from: dict[str, str] | None = None
    # set by whoever loaded the session: listing sessions never reads run bodies, ``runs`` does on first use
    _load_runs: Callable[[], list[RunOutput]] | None = field(default=None, init=False, repr=False, compare=False)
    _runs: list[RunOutput] | None = field(default=None, init=False, repr=False, compare=False)

    __repr__ = _redacted_repr

    @property
    def session_data(self) -> dict[str, Any]:
        """Agno's ``session.session_data``: the session's state and name under Agno's keys (live, not copies)."""
        return {"session_state": self.session_state, "session_name": self.session_name}

    @property
    def label(self) -> str:
        """What people see: the name when there is one, else the first 8 characters of the id."""
        return self.session_name or self.session_id[:8]

    @property
    def label_with_id(self) -> str:
        """``name (1a2b3c4d)`` or just the short id: what footers and messages call a session, telling apart
        two sessions of the same name."""
        return f"{self.session_name} ({self.session_id[:8]})" if self.session_name else self.session_id[:8]

    @property
    def experiment(self) -> dict[str, Any] | None:
        """``{"kind": "compare" | "batch", "from": session id | None}`` for a session an experiment made: lists
        hide these by default and show them under the session they came from."""
        return self.metadata.get(EXPERIMENT_KEY)

    @property
    def runs(self) -> list[RunOutput]:
        """The session's top-level runs, oldest first (members' and steps' runs are inside their parents)."""
        if self._runs is None:
            self._runs = [r for r in self._load_runs() if r.parent_run_id is None] if self._load_runs else []
        return self._runs

    def get_messages(self, last_n_runs: int | None = None, limit: int | None = None,
                     skip_roles: list[str] | None = None, skip_statuses: list[Any] | None = None,
                     skip_history_messages: bool = True) -> list[Message]:
        """As Agno's ``AgentSession.get_messages``: one system message, no copies of history by default."""
        return session_messages(self.runs, last_n_runs=last_n_runs, limit=limit, skip_roles=skip_roles,
                                skip_statuses=skip_statuses, skip_history_messages=skip_history_messages)

    def get_session_summary(self) -> SessionSummary | None:
        if not self.summary:
            return None
        mark = self.metadata.get(SUMMARY_THROUGH_KEY) or {}
        written = mark.get("updated_at")
        return SessionSummary(summary=self.summary, topics=mark.get("topics"),
                              updated_at=datetime.fromtimestamp(written, timezone.utc) if written else None)

    def get_chat_history(self, last_n_runs: int | None = None) -> list[Message]:
        """User and assistant messages of every run, whatever its status (Agno's rule)."""
        return self.get_messages(last_n_runs=last_n_runs, skip_roles=["system", "tool"], skip_statuses=[])

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        for name in ("session_state", "metadata", "forked_from"):
            data[name] = _copied(data[name])
        return redact_data(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        kwargs = _pick(cls, data, ("session_id",))
        kwargs["session_state"] = dict(kwargs.get("session_state") or {})
        kwargs["metadata"] = dict(kwargs.get("metadata") or {})
        return cls(**kwargs)
