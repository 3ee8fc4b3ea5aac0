"""Token, time and cost records: one run's (``Metrics``, Agno's ``RunMetrics``) and a session's sum of them
(``SessionMetrics``, as Agno's ``get_session_metrics`` returns).

Kept apart from ``schema`` so the arithmetic of usage is in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Metrics:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    time_to_first_token: float | None = None
    duration: float | None = None
    cost: float | None = None
    tokens_estimated: bool = False  # counts estimated from the text (``Usage.estimated``), shown with "~"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)  # numbers and one flag

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Metrics:
        names = cls.__dataclass_fields__  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in (data or {}).items() if k in names})

    @property
    def cache_read_tokens(self) -> int:
        """Agno's name for ``cached_tokens``."""
        return self.cached_tokens

    def add_usage_of(self, other: Metrics) -> None:
        """Add another record's tokens and cost: a nested run's to its parent (whose time already includes
        the nested run's), each run's to a session's total (``total`` handles the times)."""
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.tokens_estimated = self.tokens_estimated or other.tokens_estimated
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost

    @classmethod
    def total(cls, runs: list[Metrics]) -> Metrics:
        """Session metrics: tokens, durations and costs summed, time to first token averaged.

        Cost stays ``None`` only when no run has a known cost, so one local-model run does not hide the rest.
        """
        out = cls()
        for m in runs:
            out.add_usage_of(m)
        ttfts = [m.time_to_first_token for m in runs if m.time_to_first_token is not None]
        durations = [m.duration for m in runs if m.duration is not None]
        out.time_to_first_token = sum(ttfts) / len(ttfts) if ttfts else None
        out.duration = sum(durations) if durations else None
        return out


RunMetrics = Metrics  # Agno's name for one run's metrics


@dataclass
class SessionMetrics(Metrics):
    """A session's metrics (Agno's ``SessionMetrics``): the sum of its completed runs' ``Metrics``."""
