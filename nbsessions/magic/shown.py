"""Everything a magic shows passes the redaction step: what it prints, what it displays, what it raises.

One wrapper around the magic's call instead of a check beside each of its many ``print`` and ``display`` calls:
a reply, a session name or a tool result may quote an API key, and the cell is an output that is kept (saved
with the notebook).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from nbsessions.redact import redact, redact_data


class _RedactedStream:
    """A text stream whose writes are redacted; everything else is the wrapped stream's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact(text) if isinstance(text, str) else text)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def redacted_output(shell: Any) -> Iterator[None]:
    """Within the block, ``sys.stdout``/``sys.stderr`` writes and the shell's display messages are redacted."""
    publisher = getattr(shell, "display_pub", None)
    original = getattr(publisher, "publish", None)
    patched = publisher is not None and "publish" not in vars(publisher)  # not already ours (a nested magic)
    if patched:
        def publish(data: Any, *args: Any, **kwargs: Any) -> Any:
            return original(redact_data(data), *args, **kwargs)

        publisher.publish = publish
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _RedactedStream(sys.stdout), _RedactedStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = streams
        if patched:
            del publisher.publish
