"""Teams: a leader model hands work to member agents (as tools) and composes the answer.

A team run is an ordinary run in a session; each member's run is stored in the same session, nested under it
(``parent_run_id``), with its own metrics. The team run's tokens and cost include its members', and session
state is shared: members read and change the team session's state.
"""

from __future__ import annotations

import asyncio
import threading
from enum import Enum
from typing import Any

from nbsessions.db.base import BaseDb
from nbsessions.llm.base import Model
from nbsessions.records.errors import ModelError
from nbsessions.records.schema import Metrics, RunOutput, RunStatus, Session
from nbsessions.runs.agent import Agent
from nbsessions.runs.core.execution import Execution
from nbsessions.runs.core.tools import RunContext, Tool, stored_part
from nbsessions.runs.engine import RunEngine
from nbsessions.runs.printing import printable


class TeamMode(str, Enum):
    """Agno's team modes that nbsessions has (``tasks`` is refused by name)."""

    coordinate = "coordinate"
    route = "route"
    broadcast = "broadcast"


MODES = ("coordinate", "route", "broadcast")
BROADCAST_TOOL = "delegate_task_to_members"  # Agno's name for the one tool of a broadcast team
ROUTE_INSTRUCTIONS = ("You lead a team. Pick the one member best suited to the task and hand it the task with "
                      "its tool; then repeat that member's answer as your reply.")
COORDINATE_INSTRUCTIONS = ("You lead a team. Hand parts of the task to the members best suited to them, with "
                           "their tools, then compose one answer from what they report.")
BROADCAST_INSTRUCTIONS = (f"You lead a team. Send the task to every member at once with {BROADCAST_TOOL}, then "
                          "compose one answer from their replies, saying where they agree and where they differ.")
LEAD_INSTRUCTIONS = {"route": ROUTE_INSTRUCTIONS, "coordinate": COORDINATE_INSTRUCTIONS,
                     "broadcast": BROADCAST_INSTRUCTIONS}


def team_history_context(runs: list[RunOutput], current: str, num_runs: int) -> str | None:
    """Agno's ``get_team_history_context``: the newest completed team runs before ``current``, as it formats them."""
    done = [r for r in runs if r.parent_run_id is None and r.status == RunStatus.completed and r.run_id != current]
    done = done[-num_runs:] if num_runs > 0 else []
    if not done:
        return None
    parts = ["<team_history_context>"]
    for i, run in enumerate(done, 1):
        parts += [f"[run-{i}]"] + ([f"input: {run.input}"] if run.input else []) \
            + ([f"response: {run.content}"] if run.content else []) + [""]
    return "\n".join([*parts, "</team_history_context>", ""])


def _team_mode(mode: Any, delegate_to_all_members: bool) -> str:
    """Agno's rule: ``mode`` wins; without it ``delegate_to_all_members=True`` means broadcast."""
    if mode is None:
        return "broadcast" if delegate_to_all_members else "coordinate"
    value = mode.value if isinstance(mode, TeamMode) else mode
    if value == "tasks":
        raise ValueError("Agno's team mode 'tasks' (a leader keeping a task list) is not supported: "
                         f"use one of {', '.join(MODES)}")
    if value not in MODES:
        raise ValueError(f"unknown team mode {mode!r}: use one of {', '.join(MODES)}")
    return value


def _labelled(answers: list[tuple[str, str]]) -> str:
    """Every member's answer under its name, as the leader of a broadcast team reads them."""
    return "\n\n".join(f"{name}: {answer}" for name, answer in answers)


def _member_name(agent: Agent, index: int) -> str:
    raw = agent.name or f"member_{index + 1}"
    return "".join(c if c.isalnum() else "_" for c in raw.lower()).strip("_") or f"member_{index + 1}"


class Team(Agent):
    """``Team(members=[...], model=leader_model, db=...)``; ``team.run(...)`` works as ``Agent.run`` does.

    ``mode="coordinate"`` lets the leader consult several members and compose; ``"route"`` hands the task to
    one member whose answer becomes the team's; ``"broadcast"`` (or Agno's ``delegate_to_all_members=True``)
    sends one task to every member and composes from all their answers. Agno's team options:
    ``respond_directly`` (a member's answer is the team's reply, the leader is not asked again),
    ``determine_input_for_members=False`` (members get the user's input as it is),
    ``add_team_history_to_members`` (the newest ``num_team_history_runs`` team runs before a member's task),
    ``store_member_responses`` (a team run read back lists its member runs) and ``show_members_responses``
    (``print_response`` prints them). With no members the leader answers alone.
    """

    def __init__(self, members: list[Agent] | None = None, model: Model | None = None, db: BaseDb | None = None,
                 *, mode: str | None = None, instructions: str | None = None, respond_directly: bool = False,
                 determine_input_for_members: bool = True, add_team_history_to_members: bool = False,
                 num_team_history_runs: int = 3, store_member_responses: bool = False,
                 show_members_responses: bool = False, delegate_to_all_members: bool = False,
                 **options: Any) -> None:
        mode = _team_mode(mode, delegate_to_all_members)
        members = list(members or [])
        for member in members:
            if not isinstance(member, Agent):
                raise TypeError(f"a team member must be an Agent or a Team, not {type(member).__name__}")
        lead = instructions or (LEAD_INSTRUCTIONS[mode] if members else None)
        super().__init__(model=model, db=db, instructions=lead, **options)
        self.mode = mode
        self.respond_directly, self.determine_input_for_members = respond_directly, determine_input_for_members
        self.add_team_history_to_members, self.num_team_history_runs = add_team_history_to_members, \
            num_team_history_runs
        self.store_member_responses, self.show_members_responses = store_member_responses, show_members_responses
        flags = {"respond_directly": respond_directly, "determine_input_for_members": determine_input_for_members,
                 "add_team_history_to_members": add_team_history_to_members,
                 "num_team_history_runs": num_team_history_runs, "store_member_responses": store_member_responses,
                 "show_members_responses": show_members_responses}
        self._sources = (members, instructions, {**options, **flags})
        self.members = {_member_name(agent, i): self._bind(agent) for i, agent in enumerate(members)}
        self.engine: TeamEngine = TeamEngine(self)
        if self.mode == "broadcast" and self.members:
            self.tools[BROADCAST_TOOL] = self._broadcast_tool()
        for name, member in self.members.items() if self.mode != "broadcast" else ():
            self.tools[f"ask_{name}"] = self._member_tool(name, member)

    @property
    def team_id(self) -> str:
        """Agno's name for a team's id (``Team(id=...)``)."""
        return self.agent_id

    @property
    def kind(self) -> str:
        return "team"

    def with_db(self, db: BaseDb) -> Team:
        members, instructions, options = self._sources
        return Team(members, self.model, db, mode=self.mode, instructions=instructions, **options)

    def _bind(self, member: Agent) -> Agent:
        """The member as it runs inside the team: the team's store; with ``add_history_to_context`` its history
        is its own earlier runs in the team's session (Agno's member history)."""
        return member.with_db(self.db)

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
                    function=ask, async_function=aask, wants_context=True,
                    stop_after_tool_call=self.respond_directly)

    def _broadcast_tool(self) -> Tool:
        """Agno's broadcast: one task to every member; under ``arun`` they run at once, under ``run`` in turn
        (as Agno's), each a nested run of its own. The leader gets every answer, each under its member's name."""
        names = ", ".join(self.members)

        def delegate_task_to_members(task: str, run_context: RunContext) -> str:
            return _labelled([(member.name or name, self._ask(member, task, run_context))
                             for name, member in self.members.items()])

        async def adelegate_task_to_members(task: str, run_context: RunContext) -> str:
            answers = await asyncio.gather(*(self._aask(m, task, run_context) for m in self.members.values()))
            return _labelled([(m.name or name, answer) for (name, m), answer in zip(self.members.items(), answers,
                                                                                      strict=True)])

        return Tool(name=BROADCAST_TOOL, description=f"Send one task to every member ({names}) and get each answer",
                    parameters={"type": "object", "properties": {"task": {
                        "type": "string", "description": "the task, with everything the members need to know"}},
                        "required": ["task"]},
                    function=delegate_task_to_members, async_function=adelegate_task_to_members,
                    wants_context=True, stop_after_tool_call=self.respond_directly)

    def _ask(self, member: Agent, task: str, context: RunContext) -> str:
        """Run a member in the team's session, nested under the team run; its failure is the leader's to see.
        Its events are kept for the team's stream, which forwards them (as Agno's do)."""
        events, run = self.engine.member_events.setdefault(context.run_id, []), None
        try:
            for item in member.run(self._member_task(task, context), stream=True, stream_events=True,
                                   yield_run_output=True, **self._member_options(member, context)):
                run = item if isinstance(item, RunOutput) else run
                events += [] if isinstance(item, RunOutput) else [item]
        except ModelError as exc:
            return self._member_failed(member, context, exc)
        return self._member_answer(member, context, run)

    async def _aask(self, member: Agent, task: str, context: RunContext) -> str:
        """``_ask`` inside ``arun``: the member runs on the event loop too."""
        events, run = self.engine.member_events.setdefault(context.run_id, []), None
        try:
            task = await asyncio.to_thread(self._member_task, task, context)  # it reads the store
            async for item in member.arun(task, stream=True, stream_events=True, yield_run_output=True,
                                          **self._member_options(member, context)):
                run = item if isinstance(item, RunOutput) else run
                events += [] if isinstance(item, RunOutput) else [item]
        except ModelError as exc:
            return self._member_failed(member, context, exc)
        return await asyncio.to_thread(self._member_answer, member, context, run)  # it reads the store

    def _member_task(self, task: str, context: RunContext) -> str:
        """What the member is asked: the leader's task (or the user's input), after the team's history."""
        if not self.determine_input_for_members:
            task = self.engine.inputs.get(context.run_id, task)
        if self.add_team_history_to_members:
            history = team_history_context(self.db.list_runs(context.session_id), context.run_id,
                                           self.num_team_history_runs)
            task = f"{history}\n\n{task}" if history else task
        return task

    def _member_options(self, member: Agent, context: RunContext) -> dict[str, Any]:
        state = stored_part(context.session_state)  # the team run's own keys are the member run's to set
        member.session_state = state
        return {"session_id": context.session_id, "user_id": context.user_id, "parent_run_id": context.run_id,
                "session_state": state or None}

    def _member_failed(self, member: Agent, context: RunContext, exc: ModelError) -> str:
        self.engine.count(context.run_id, exc.run)
        return f"error: {member.name or 'member'} failed: {exc}"

    def _member_answer(self, member: Agent, context: RunContext, run: RunOutput) -> str:
        self.engine.count(context.run_id, run)
        session = self.db.get_session(context.session_id)
        if session is None:  # deleted while the member ran: the team's run ends cancelled too, unstored
            return run.error or "the session was deleted"
        stored = session.session_state
        for key in [k for k in stored_part(context.session_state) if k not in stored]:  # a member's tool deleted it
            del context.session_state[key]
        context.session_state.update(stored)
        if run.status == RunStatus.paused:
            return f"{member.name or 'member'} is waiting for a human; tell the user so"
        return run.content

    def get_session(self, session_id: str | None = None, user_id: str | None = None) -> Session:
        """As Agno's ``TeamSession``: ``runs`` holds the team's runs and its members' runs, in order."""
        session = super().get_session(session_id, user_id)
        session._runs = self.db.list_runs(session.session_id)
        return session

    def print_response(self, input: str, *, stream: bool | None = None, markdown: bool | None = None,
                       show_message: bool = True, show_members_responses: bool | None = None,
                       **options: Any) -> None:
        """``Agent.print_response``, then each member's reply (``show_members_responses``, as Agno's panel)."""
        super().print_response(input, stream=stream, markdown=markdown, show_message=show_message, **options)
        if self.show_members_responses if show_members_responses is None else show_members_responses:
            run = self.sessions.get_last_run_output(options.get("session_id"))
            for member in self.member_runs(run.run_id) if run is not None else []:
                print(f"{printable(member.agent_name or 'member')}: {printable(member.content)}", flush=True)

    def get_run_output(self, run_id: str, session_id: str | None = None) -> RunOutput | None:
        return self._with_members(super().get_run_output(run_id, session_id))

    def get_last_run_output(self, session_id: str | None = None) -> RunOutput | None:
        return self._with_members(super().get_last_run_output(session_id))

    def _with_members(self, run: RunOutput | None) -> RunOutput | None:
        """A team run read back from the store lists its member runs only with ``store_member_responses`` (Agno
        keeps them on the stored team run only then); the member runs stay in the session either way."""
        if run is not None and self.store_member_responses:
            run._load_members = lambda: self.member_runs(run.run_id)
        return run

    def member_runs(self, run_id: str) -> list[RunOutput]:
        """The member runs a team run made, in order."""
        run = self.db.get_run(run_id)
        if run is None:
            return []
        return [r for r in self.get_runs(run.session_id) if r.parent_run_id == run_id]


class TeamEngine(RunEngine):
    """A team's runs: each adds its members' usage and forwards their events, named as Agno names a team's."""

    def __init__(self, team: Team) -> None:
        super().__init__(team)
        self.team = team
        self.nested: dict[str, list[Metrics]] = {}
        self.inputs: dict[str, str] = {}  # each running team run's input (``determine_input_for_members=False``)
        self.member_events: dict[str, list[Any]] = {}  # members' events not yet forwarded, by team run
        self.nested_lock = threading.Lock()

    def count(self, parent_run_id: str, run: RunOutput | None) -> None:
        if run is not None:
            with self.nested_lock:
                self.nested.setdefault(parent_run_id, []).append(run.metrics)

    def add_nested_usage(self, run: RunOutput) -> None:
        with self.nested_lock:
            nested = self.nested.pop(run.run_id, [])
            self.inputs.pop(run.run_id, None)
            self.member_events.pop(run.run_id, None)
        for metrics in nested:
            run.metrics.add_usage_of(metrics)

    def start(self, run: RunOutput, model: Model, session_state: dict[str, Any]) -> Execution:
        run._load_members = lambda: self.team.member_runs(run.run_id)  # Agno's member_responses, read on use
        run.team_id, run.agent_id = self.team.agent_id, None  # Agno's TeamRunOutput: a team_id, no agent_id
        with self.nested_lock:
            self.inputs[run.run_id] = run.input
        execution = super().start(run, model, session_state)
        execution.event_prefix = "Team"  # TeamRunStarted, TeamRunContent... as Agno names a team's events
        execution.forwarded = lambda: self.member_events.pop(run.run_id, [])
        return execution
