"""Cost of a run in USD: user-set prices first, then the maintained ``genai-prices`` table.

``genai_prices`` is imported on first use, not at import time: it costs ~0.2 s to import, which a notebook
using only offline or local models should never pay.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from nbsessions.llm.base import Usage

UNPRICED_PROVIDERS = frozenset({"offline", "function"})
"""Providers no public table lists. Only stored run records (which carry a provider name, not a model) need
this, so that showing an offline run's context never imports the table; live models declare ``is_local``."""


@dataclass(frozen=True)
class Price:
    """USD per million tokens; cached input tokens fall back to the input price when not given."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.input_tokens)
        cached_rate = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        return ((usage.input_tokens - cached) * self.input_per_mtok + cached * cached_rate
                + usage.output_tokens * self.output_per_mtok) / 1_000_000


_custom_prices: dict[str, Price] = {}
_lock = threading.Lock()


def set_price(model_id: str, *, input_per_mtok: float, output_per_mtok: float,
              cached_input_per_mtok: float | None = None) -> None:
    """Price a model the public table does not know (a local or fine-tuned one), for this process."""
    with _lock:
        _custom_prices[model_id] = Price(input_per_mtok, output_per_mtok, cached_input_per_mtok)


def clear_prices() -> None:
    with _lock:
        _custom_prices.clear()


def cost_of(model_id: str, provider: str, usage: Usage, *, public: bool = True) -> float | None:
    """USD for one run, or ``None`` when nobody knows the model's price (never a guess).

    ``public=False`` (the model declares ``is_local``: a local or self-hosted server, or an offline or scripted
    model) skips the public table: a ``gpt-4o-mini`` on 127.0.0.1 costs what the user said with ``set_price``, or
    nothing known. A provider the table does not know (``offline``) has no price either.
    """
    custom = _custom_prices.get(model_id)
    if custom is not None:
        return custom.cost(usage)
    if not public or not _table_knows(model_id, provider):
        return None
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    result = calc_price(
        PriceUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                   cache_read_tokens=usage.cached_tokens or None),
        model_ref=model_id, provider_id=provider,
    )
    return float(result.total_price)


@lru_cache(maxsize=256)
def _table_knows(model_id: str, provider: str) -> bool:
    """Ask the table once per model; unknown models (local servers) are remembered as unknown."""
    try:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price

        calc_price(PriceUsage(input_tokens=1, output_tokens=1), model_ref=model_id, provider_id=provider)
    except LookupError:
        return False
    return True


@lru_cache(maxsize=256)
def context_window_of(model_id: str, provider: str) -> int | None:
    """The model's context window in tokens from the same maintained table, or ``None`` when unknown."""
    if provider in UNPRICED_PROVIDERS or not _table_knows(model_id, provider):
        return None
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    result = calc_price(PriceUsage(input_tokens=1, output_tokens=1), model_ref=model_id, provider_id=provider)
    return result.model.context_window
