"""The run engine and what drives it: ``Agent``, ``Team``, ``Workflow``, sessions, context, tools and pauses.

Above ``llm/`` and ``db/``, below presentation and the surfaces. One engine (``execution.py``, no I/O) driven by
the sync and async transports of ``streams.py``.
"""
