"""How an OpenAI(-compatible) server's failures read: one line that says what happened and what to do.

A mixin of ``_OpenAIModel`` (``openai_base.py``); the two APIs override ``_lacks_api`` and ``_no_api_message``.
"""

from __future__ import annotations

from typing import Any

from nbsessions.llm.openai_wire import (
    _cause_text,
    _caused_by,
    _display_url,
    _error,
    _error_detail,
    _Outcome,
    _retry_after,
    is_openai_endpoint,
)
from nbsessions.records.errors import ModelError, kind_of_status
from nbsessions.records.formatting import shorten


class OpenAIErrors:
    """The SDK's exceptions and unfinished streams as ``ModelError``s with typed fields (status, retry, kind)."""

    host: str
    endpoint: str
    id: str
    timeout: float

    def _unfinished(self, outcome: _Outcome) -> ModelError:
        if outcome.events == 0:
            return ModelError(f"malformed response from {self.host}: no events in the stream", kind="malformed")
        return ModelError(f"incomplete response from {self.host}: the stream ended before the reply was complete",
                          kind="malformed")

    # -- errors --------------------------------------------------------------------------------------

    def _translate(self, exc: Exception, *, streamed: bool) -> Exception | None:
        """The SDK's exception as a one-line ``ModelError`` that says what to do; ``None`` if not ours."""
        if isinstance(exc, ModelError):
            return exc
        import openai

        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.APITimeoutError):
            return _error(f"timed out after {self.timeout:g} s waiting for {self.host}", kind="timeout")
        if isinstance(exc, openai.APIConnectionError):
            if _caused_by(exc, "ConnectError"):
                hint = "check your network" if is_openai_endpoint(self.endpoint) else "is the server running?"
                return _error(f"cannot connect to {_display_url(self.endpoint)}: {hint}", kind="connection")
            where = "closed mid-response" if streamed else "failed"
            return _error(f"connection to {self.host} {where}: {_cause_text(exc)}", kind="connection")
        if isinstance(exc, openai.APIResponseValidationError | ValueError):
            return _error(f"malformed response from {self.host}: {exc}", kind="malformed")
        if isinstance(exc, openai.APIError):
            code = exc.body.get("code") if isinstance(exc.body, dict) else None
            return _error(f"error from {self.host}: {exc.message}",
                          status_code=code if isinstance(code, int) else None)
        if isinstance(exc, openai.OpenAIError):
            return _error(f"OpenAI client error: {exc}")
        return None

    def _status_error(self, exc: Any) -> ModelError:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = shorten(_error_detail(exc.body) or exc.message, 240)
        wait = _retry_after(exc.response.headers)
        kind = kind_of_status(status)
        if status == 401:
            text = "401 unauthorized: check OPENAI_API_KEY or api_key=..."
        elif status == 429 and body.get("code") == "insufficient_quota":
            text, kind, wait = "429 quota exceeded: check your plan and billing", "quota", None
        elif status == 429:
            text = f"429 rate limited: retry in {wait} s" if wait is not None else "429 rate limited: retry later"
        elif status == 404 and self._lacks_api(body):
            text = self._no_api_message(detail)
        elif status == 404:
            text = f"404 not found at {self.host} (check the model id {self.id!r} and base_url): {detail}"
        elif status >= 500:
            text = f"{status} server error from {self.host}: {detail}"
        else:
            text = f"{status} error from {self.host}: {detail}"
        return _error(text, status_code=status, retry_after=wait, kind=kind)

    def _lacks_api(self, body: dict[str, Any]) -> bool:
        """Whether a 404 means the server has no such API at all (not merely no such model)."""
        return False

    def _no_api_message(self, detail: str) -> str:
        return f"404 not found at {self.host}: {detail}"
