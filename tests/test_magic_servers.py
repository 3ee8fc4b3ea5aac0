"""The magic against servers that are not OpenAI: their own model ids, one listed model, a named key variable,
whole replies for ``--no-stream``, titles by the cell's model, and estimated counts marked in what users read."""

from __future__ import annotations

import json
import re

import pytest
from notebook_shell import SECRET, one_red_line
from openai_server import LLAMA_CPP

GGUF_ID = "/models/SmolLM2-135M-Instruct.Q8_0.gguf"  # llama-cpp-python lists the model file's path


def session_line(nb) -> str:
    agent = nb.magics.agent
    sessions = agent.get_sessions()
    return f"{sessions[0].label} ({sessions[0].session_id[:8]}), {len(agent.get_runs(sessions[0].session_id))} runs"


@pytest.fixture
def local(nb, openai_server):
    """A notebook pointed at the loopback server with no model named."""
    nb.run(f"%config AgentMagics.base_url = '{openai_server.base_url}'")
    nb.run("%config AgentMagics.update_interval = 0")
    return nb


@pytest.mark.parametrize("model_id", [GGUF_ID, "llama3.2:1b", "HuggingFaceTB/SmolLM2-135M-Instruct"])
def test_any_id_the_server_lists_is_accepted_as_it_is(local, openai_server, model_id):
    openai_server.models = [model_id, "other"]
    ran = local.run(f"%%agent -m {model_id}\nHi")
    assert ran.result.success, one_red_line(ran)
    assert openai_server.last.body["model"] == model_id


def test_a_path_the_server_does_not_list_is_refused_with_what_it_offers(local, openai_server):
    openai_server.models = [GGUF_ID]
    ran = local.run("%%agent -m /models/other.gguf\nHi")
    assert "unknown model id '/models/other.gguf'" in one_red_line(ran) and GGUF_ID in one_red_line(ran)
    assert [c.path for c in openai_server.calls] == []


def test_with_no_model_named_the_only_listed_model_is_used_and_announced_once(local, openai_server):
    openai_server.models = [GGUF_ID]
    first = local.run("%%agent\nHi")
    assert first.result.success, one_red_line(first)
    assert openai_server.last.body["model"] == GGUF_ID
    assert first.stdout.startswith(f"nbsessions: no model named; using {GGUF_ID}, the only model ")
    second = local.run("%%agent\nAgain")
    assert second.result.success and second.stdout == ""


def test_with_no_model_named_and_several_listed_the_user_is_asked_to_choose(local, openai_server):
    openai_server.models = ["a", "b"]
    ran = local.run("%%agent\nHi")
    assert "no model is named" in one_red_line(ran) and "lists 2)" in one_red_line(ran)
    assert [c.path for c in openai_server.calls] == []


def test_api_key_env_sends_the_key_from_that_variable_and_never_shows_it(local, openai_server, monkeypatch, workdir):
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    openai_server.api_key = SECRET
    local.run("%config AgentMagics.api_key_env = 'MY_LLM_KEY'")
    ran = local.run("%%agent -m m --new keyed\nHi")
    assert ran.result.success, one_red_line(ran)
    assert openai_server.last.headers["authorization"] == f"Bearer {SECRET}"
    config = local.run("%config AgentMagics")
    shown = [ran.stdout, config.stdout, *(json.dumps(o.data) for o in ran.outputs)]
    assert "MY_LLM_KEY" in config.stdout
    assert all(SECRET not in text for text in shown)
    assert SECRET not in (workdir / "nbsessions.json").read_text()


def test_api_key_env_refuses_something_that_is_not_a_variable_name_without_echoing_it(local, caplog):
    ran = local.run(f"%config AgentMagics.api_key_env = 'sk-{SECRET}'")
    assert "takes the name of an environment variable" in caplog.text  # %config logs a refused value
    assert SECRET not in caplog.text + ran.stderr + ran.stdout + "".join(json.dumps(o.data) for o in ran.outputs)
    assert local.magics.api_key_env == ""


def test_no_stream_sends_a_whole_request(local, openai_server):
    ran = local.run("%%agent -m m --no-stream\nHi")
    assert ran.result.success and openai_server.last.body["stream"] is False
    assert ran.final.startswith("echo: Hi")


def test_the_title_comes_from_the_cells_model_with_few_tokens_and_is_trimmed(nb, openai_server):
    """The notebook's own model is offline; ``-m`` names a served one, and that one titles the session."""
    nb.run(f"%config AgentMagics.base_url = '{openai_server.base_url}'")
    nb.run("%config AgentMagics.model = 'offline'")
    openai_server.script("A histogram.", '**Title:** "Sales Plot Choice".\nMore words that are not the title')
    ran = nb.run("%%agent -m local-model\nWhich plot for sales?")
    assert ran.result.success, one_red_line(ran)
    title = openai_server.last.body
    assert title["messages"][0]["content"].startswith("Give a title") and title["model"] == "local-model"
    assert title["max_tokens"] <= 32 and title["stream"] is False
    assert session_line(nb).startswith("Sales Plot Choice (")


def test_an_echoing_server_titles_the_session_with_the_prompts_first_words_not_the_title_request(served,
                                                                                                 openai_server):
    ran = served.run("%%agent\nWhich plot suits the monthly sales figures best?")
    assert ran.result.success, one_red_line(ran)
    assert openai_server.last.body["messages"][0]["content"].startswith("Give a title")  # echoed back as the title
    assert session_line(served).startswith("Which plot suits the monthly sales… (")


def test_estimated_counts_show_a_tilde_in_the_footer_sessions_and_metrics(local, openai_server):
    openai_server.quirks = LLAMA_CPP
    ran = local.run("%%agent -m m --new est\nHi")
    assert re.search(r"~\d+ in / ~\d+ out tokens", ran.final)
    assert re.search(r"~\d+ / ~\d+", local.run("%agent sessions").stdout + json.dumps(
        [o.data for o in local.run("%agent sessions").outputs]))
    metrics = local.run("%agent metrics").stdout
    assert re.search(r"tokens: ~\d+ in / ~\d+ out", metrics) and "estimated" in metrics


def test_openai_base_url_from_the_environment_is_a_server_like_base_url(nb, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    openai_server.models = ["only-one"]
    ran = nb.run("%%agent\nHi")
    assert ran.result.success, one_red_line(ran)
    assert openai_server.last.body["model"] == "only-one" and "only-one, the only model" in ran.stdout


def test_status_names_the_server_and_the_keys_variable_never_the_key(local, openai_server, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    local.run("%config AgentMagics.api_key_env = 'MY_LLM_KEY'")
    shown = local.run("%agent").stdout
    assert re.search(rf"server: +{re.escape(openai_server.base_url)} · key from \$MY_LLM_KEY \(set\)", shown), shown
    assert SECRET not in shown
