"""Who runs prompts, and how: ``Agent``, ``Team``, ``Workflow``, their sessions, and the run engine.

Above ``llm/`` and ``db/``, below presentation and the surfaces. ``agent.py`` writes Agno's methods as
delegations to ``sessions.py`` and ``engine.py``; ``core/`` is one run, knowing nothing of who runs it;
``workflows/`` runs steps in order.
"""
