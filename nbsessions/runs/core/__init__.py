"""One run, from its context to its stored outcome, knowing nothing of agents, teams or workflows.

``execution.py`` is the run as a conversation with its driver (no I/O); ``streams.py`` drives it over the
model's sync or async transport, ``resumable.py`` lets a driver stop and go on, ``interrupts.py`` turns Ctrl-C
and task cancellation into a cancelled run, ``run_writes.py`` stores it (``spool.py`` keeps on disk what the
store never answered before the process exited). What a run sends is built by
``context.py`` and ``system_message.py`` (and shown by ``inspect_context.py``); ``tools.py``, ``hitl.py`` and
``history_tools.py`` are the tools it may call and the pauses they make.
"""
