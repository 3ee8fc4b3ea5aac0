"""Teams: a leader model hands work to member agents (as tools) and composes the answer.

A team run is an ordinary run in a session; each member's run is stored in the same session, nested under it
(``parent_run_id``), with its own metrics. The team run's tokens and cost include its members', and session
state is shared: members read and change the team session's state.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from nbsessions.agent import Agent
from nbsessions.db.base import BaseDb
from nbsessions.errors import ModelError
from nbsessions.execution import Execution
from nbsessions.llm.base import Model
from nbsessions.schema import Metrics, RunOutput, RunStatus
from nbsessions.tools import RunContext, Tool, stored_part

MODES = ("coordinate", "route")
ROUTE_INSTRUCTIONS = ("You lead a team. Pick the one member best suited to the task and hand it the task with "
                      "its tool; then repeat that member's answer as your reply.")
COORDINATE_INSTRUCTIONS = ("You lead a team. Hand parts of the task to the members best suited to them, with "
                           "their tools, then compose one answer from what they report.")


def _member_name(agent: Agent, index: int) -> str:
    raw = agent.name or f"member_{index + 1}"
    return "".join(c if c.isalnum() else "_" for c in raw.lower()).strip("_") or f"member_{index + 1}"


class Team(Agent):
    """``Team(members=[...], model=leader_model, db=...)``; ``team.run(...)`` works as ``Agent.run`` does.

    ``mode="coordinate"`` lets the leader consult several members and compose; ``"route"`` hands the task to
    one member whose answer becomes the team's.
    """

    def __init__(self, members: list[Agent], model: Model | None = None, db: BaseDb | None = None, *,
                 mode: str = "coordinate", instructions: str | None = None, **options: Any) -> None:
        if not members:
            raise ValueError("a team needs at least one member agent")
        if mode not in MODES:
            raise ValueError(f"unknown team mode {mode!r}: use one of {', '.join(MODES)}")
        lead = instructions or (ROUTE_INSTRUCTIONS if mode == "route" else COORDINATE_INSTRUCTIONS)
        super().__init__(model=model, db=db, instructions=lead, **options)
        self.mode = mode
        self._sources = (list(members), instructions, dict(options))
        self.members = {_member_name(agent, i): self._bind(agent) for i, agent in enumerate(members)}
        self._nested: dict[str, list[Metrics]] = {}
        self._nested_lock = threading.Lock()
        for name, member in self.members.items():
            self.tools[f"ask_{name}"] = self._member_tool(name, member)

    @property
    def kind(self) -> str:
        return "team"

    def with_db(self, db: BaseDb) -> Team:
        members, instructions, options = self._sources
        return Team(members, self.model, db, mode=self.mode, instructions=instructions, **options)

    def _bind(self, member: Agent) -> Agent:
        """The member as it runs inside the team: the team's store, no history of its own."""
        bound = member.with_db(self.db)
        bound.add_history_to_context = False
        return bound

    def _member_tool(self, name: str, member: Agent) -> Tool:
        given = member.instructions if isinstance(member.instructions, str) else "\n".join(member.instructions or [])
        about = member.system_prompt.role or member.system_prompt.description or given  # Agno's member role first
        description = (about or f"the {name} member").split("\n")[0][:200]

        def ask(task: str, run_context: RunContext) -> str:
            return self._ask(member, task, run_context)

        async def aask(task: str, run_context: RunContext) -> str:
            return await self._aask(member, task, run_context)

        return Tool(name=f"ask_{name}", description=f"Hand a task to {name}: {description}",
                    parameters={"type": "object", "properties": {"task": {
                        "type": "string", "description": "the task, with everything the member needs to know"}},
                        "required": ["task"]},
                    function=ask, async_function=aask, wants_context=True)

    def _ask(self, member: Agent, task: str, context: RunContext) -> str:
        """Run a member in the team's session, nested under the team run; its failure is the leader's to see."""
        try:
            run = member.run(task, **self._member_options(member, context))
        except ModelError as exc:
            return self._member_failed(member, context, exc)
        return self._member_answer(member, context, run)

    async def _aask(self, member: Agent, task: str, context: RunContext) -> str:
        """``_ask`` inside ``arun``: the member runs on the event loop too."""
        try:
            run = await member.arun(task, **self._member_options(member, context))
        except ModelError as exc:
            return self._member_failed(member, context, exc)
        return await asyncio.to_thread(self._member_answer, member, context, run)  # it reads the store

    def _member_options(self, member: Agent, context: RunContext) -> dict[str, Any]:
        state = stored_part(context.session_state)  # the team run's own keys are the member run's to set
        member.session_state = state
        return {"session_id": context.session_id, "user_id": context.user_id, "parent_run_id": context.run_id,
                "session_state": state or None}

    def _member_failed(self, member: Agent, context: RunContext, exc: ModelError) -> str:
        self._count(context.run_id, exc.run)
        return f"error: {member.name or 'member'} failed: {exc}"

    def _member_answer(self, member: Agent, context: RunContext, run: RunOutput) -> str:
        self._count(context.run_id, run)
        stored = self.db.get_session(context.session_id).session_state
        for key in [k for k in stored_part(context.session_state) if k not in stored]:  # a member's tool deleted it
            del context.session_state[key]
        context.session_state.update(stored)
        if run.status == RunStatus.paused:
            return f"{member.name or 'member'} is waiting for a human; tell the user so"
        return run.content

    def _count(self, parent_run_id: str, run: RunOutput | None) -> None:
        if run is not None:
            with self._nested_lock:
                self._nested.setdefault(parent_run_id, []).append(run.metrics)

    def _add_nested_usage(self, run: RunOutput) -> None:
        with self._nested_lock:
            nested = self._nested.pop(run.run_id, [])
        for metrics in nested:
            run.metrics.add_usage_of(metrics)

    def _start(self, run: RunOutput, model: Model, session_state: dict[str, Any]) -> Execution:
        run._load_members = lambda: self.member_runs(run.run_id)  # Agno's member_responses, read on use
        return super()._start(run, model, session_state)

    def get_run_output(self, run_id: str, session_id: str | None = None) -> RunOutput | None:
        return self._with_members(super().get_run_output(run_id, session_id))

    def get_last_run_output(self, session_id: str | None = None) -> RunOutput | None:
        return self._with_members(super().get_last_run_output(session_id))

    def _with_members(self, run: RunOutput | None) -> RunOutput | None:
        """A team run read back from the store lists its member runs too, as one just made does."""
        if run is not None:
            run._load_members = lambda: self.member_runs(run.run_id)
        return run

    def member_runs(self, run_id: str) -> list[RunOutput]:
        """The member runs a team run made, in order."""
        run = self.db.get_run(run_id)
        if run is None:
            return []
        return [r for r in self.get_runs(run.session_id) if r.parent_run_id == run_id]
