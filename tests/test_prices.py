"""Run costs come from genai-prices for known models, from the user for others, and are never guessed."""

from __future__ import annotations

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from nbsessions.llm import OfflineModel, OpenAIResponses, Usage
from nbsessions.llm.prices import clear_prices, cost_of, set_price

USAGE = Usage(input_tokens=12_000, output_tokens=3_000, cached_tokens=4_000)


@pytest.fixture(autouse=True)
def fresh_prices():
    clear_prices()
    yield
    clear_prices()


def test_known_openai_model_costs_what_genai_prices_says():
    model = OpenAIResponses("gpt-5.2")
    expected = calc_price(PriceUsage(input_tokens=12_000, output_tokens=3_000, cache_read_tokens=4_000),
                          model_ref="gpt-5.2", provider_id="openai").total_price
    cost = cost_of(model.id, model.provider, USAGE)
    assert cost is not None and cost > 0
    assert cost == pytest.approx(float(expected))


def test_unknown_model_has_no_price():
    assert cost_of("my-local-llama-7b", "openai", USAGE) is None


def test_offline_model_has_no_price_even_under_a_priced_name():
    assert cost_of(OfflineModel().id, OfflineModel.provider, USAGE) is None
    assert cost_of("gpt-5.2", "offline", USAGE) is None


def test_user_price_applies_and_clear_prices_removes_it():
    set_price("my-local-llama-7b", input_per_mtok=1.0, output_per_mtok=2.0, cached_input_per_mtok=0.5)
    expected = (8_000 * 1.0 + 4_000 * 0.5 + 3_000 * 2.0) / 1_000_000
    assert cost_of("my-local-llama-7b", "openai", USAGE) == pytest.approx(expected)
    clear_prices()
    assert cost_of("my-local-llama-7b", "openai", USAGE) is None


def test_user_price_overrides_the_table_until_cleared():
    table = cost_of("gpt-5.2", "openai", USAGE)
    set_price("gpt-5.2", input_per_mtok=100.0, output_per_mtok=100.0)
    assert cost_of("gpt-5.2", "openai", USAGE) == pytest.approx(15_000 * 100.0 / 1_000_000)
    clear_prices()
    assert cost_of("gpt-5.2", "openai", USAGE) == table
