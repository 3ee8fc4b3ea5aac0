"""Agno's import path for teams (``from nbsessions.team import Team``); it lives in ``runs/team.py``."""

from nbsessions.runs.team import Team, TeamMode

__all__ = ["Team", "TeamMode"]
