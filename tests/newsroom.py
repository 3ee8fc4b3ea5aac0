"""A two-member team with scripted models, for tests that show nested runs (the panel, the sidebar's API)."""

from __future__ import annotations

import json

from nbsessions import Agent, FunctionModel
from nbsessions.llm.base import ToolCall
from nbsessions.runs.team import Team

HANDOFFS = (("researcher", "find facts"), ("writer", "write it up"))


def leader(*handoffs: tuple[str, str]) -> FunctionModel:
    """Hands each (member, task) over in turn with ask_<member>, then composes the results."""
    def reply(messages, tools):
        results = [m.content or "" for m in messages if m.role == "tool" and not m.from_history]
        if len(results) < len(handoffs):
            name, task = handoffs[len(results)]
            return ToolCall(f"call_{len(results)}", f"ask_{name}", json.dumps({"task": task}))
        return "composed: " + " | ".join(results)
    return FunctionModel(reply, id="leader")


def member(name: str, shown: str = "{name}") -> Agent:
    """A member replying "<shown> did <task>" (``shown`` may dress the name: ``"**{name}**"``)."""
    said = shown.format(name=name)
    return Agent(model=FunctionModel(lambda m: f"{said} did {m[-1].content}", id=f"{name}-model"), name=name)


def newsroom(db, shown: str = "{name}") -> Team:
    """The researcher finds facts, the writer writes them up, the leader composes."""
    return Team(members=[member(name, shown) for name, _ in HANDOFFS], db=db, model=leader(*HANDOFFS))
