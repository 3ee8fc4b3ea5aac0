"""Workflows: steps — agents, teams or plain functions — run in order, in a session of their own.

``workflow.py`` is Agno's ``Workflow``; ``steps.py`` its ``Step`` and ``StepInput``; ``step_runner.py`` runs a
workflow run's steps (retries, skips, history); ``workflow_agent.py`` the agent that decides whether to run them.
"""
