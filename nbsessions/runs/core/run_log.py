"""Agno's ``debug_mode``: the messages a run sends and the reply it gets, logged at DEBUG.

Through the ``logging`` module (logger ``nbsessions.debug``), so a notebook or an application decides where
they go. Every line passes the redaction step first (a reply or a tool result may quote a key).
"""

from __future__ import annotations

import logging

from nbsessions.records.redact import redact
from nbsessions.records.schema import RunOutput

logger = logging.getLogger("nbsessions.debug")


def _redacted(record: logging.LogRecord) -> bool:
    """The record's text with secrets redacted, formatted once here so no handler sees the raw arguments."""
    record.msg, record.args = redact(record.getMessage()), None
    return True


logger.addFilter(_redacted)


def enable() -> None:
    """What Agno's ``debug_mode=True`` does to its logger: DEBUG, shown on stderr when nothing else shows it."""
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())


def log_sent(run: RunOutput) -> None:
    logger.debug("run %s (model %s) sends %d messages", run.run_id[:8], run.model, len(run.messages))
    for message in run.messages:
        origin = " (history)" if message.from_history else ""
        logger.debug("%s%s: %s", message.role, origin, message.content or message.tool_calls or "")


def log_outcome(run: RunOutput) -> None:
    logger.debug("run %s %s: %s", run.run_id[:8], run.status.value, run.error or run.content)
    for message in run.messages[-8:]:
        if message.role == "tool":
            logger.debug("tool result %s: %s", message.tool_call_id, message.content)
