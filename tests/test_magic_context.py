"""``%agent context``: what a run sent and, with ``--next``, what the next cell would send — on a real shell."""

from __future__ import annotations

from notebook_shell import PAYLOAD, one_red_line, stored_runs
from xss import ActiveContent


def shown(ran) -> tuple[str, str]:
    data = ran.outputs[-1].data
    return data["text/plain"], data["text/html"]


def test_the_next_cell_preview_lists_exactly_the_messages_the_server_then_receives(served, openai_server):
    served.run("%%agent --new trip --system 'You plan trips.'\nCapital of France?")
    served.run("%%agent\nOf Spain?")
    assert "unknown name 'country'" in one_red_line(served.run("%agent context --next And of {country}?"))
    before = len(openai_server.requests)
    served.run("country = 'Portugal'")
    plain, page = shown(served.run("%agent context --next And of {country}?"))
    assert "preview, nothing sent" in plain
    assert len(openai_server.requests) == before  # a dry run: the server saw nothing
    served.run("%%agent\nAnd of {country}?")
    sent = openai_server.requests[-1]["messages"]
    blocks = plain.split("\n\n")[1:-1]  # after the headline, before the tools line
    assert len(blocks) == len(sent) == 1 + 4 + 1 - 1  # no system here: --system was for the first cell only
    for block, message in zip(blocks, sent, strict=True):
        head, _, content = block.partition("\n")
        assert f"({message['role']})" in head and content == message["content"]
    assert "And of Portugal?" in blocks[-1] and blocks[0].startswith("[1] history (user) from #1 ")


def test_a_stored_runs_context_flags_history_by_run_and_stays_inert(nb, workdir):
    nb.run(f"%%agent --new inert\n{PAYLOAD}")
    nb.run("%%agent\nsecond")
    runs = stored_runs(workdir / "nbsessions.json")
    plain, page = shown(nb.run("%agent context"))
    assert f"sent by run {runs[1].run_id[:8]}" in plain and "context window unknown" in plain
    assert f"[1] history (user) from #1 {runs[0].run_id[:8]}" in plain and "~" in plain
    checker = ActiveContent()
    checker.feed(page)
    assert checker.found == [] and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    first, _ = shown(nb.run(f"%agent context {runs[0].run_id[:6]}"))
    assert f"sent by run {runs[0].run_id[:8]}" in first and "history" not in first.split("\n", 1)[1]


def test_a_preview_stores_nothing_and_a_new_notebook_previews_a_bare_prompt(nb, workdir):
    plain, _ = shown(nb.run("%agent context --next hello there"))
    assert "[1] prompt (user)" in plain and "hello there" in plain and "[2]" not in plain
    assert not (workdir / "nbsessions.json").exists() or stored_runs(workdir / "nbsessions.json") == []
    nb.run("%%agent --new s\nfirst")
    path = workdir / "nbsessions.json"
    size = path.stat().st_size
    plain, _ = shown(nb.run("%agent context --no-history --next"))
    assert path.stat().st_size == size and "[1] prompt (user) · ~0 tokens\n(empty)" in plain


def test_bad_context_requests_are_one_line_and_write_nothing(nb, workdir):
    assert "no active session" in one_red_line(nb.run("%agent context"))
    nb.run("%%agent --new s\nfirst")
    assert "no run in this session" in one_red_line(nb.run("%agent context zzzz"))
    assert "drop 'abc'" in one_red_line(nb.run("%agent context abc --next hi"))
    assert "-m is for --next" in one_red_line(nb.run("%agent context -m offline"))
    assert len(stored_runs(workdir / "nbsessions.json")) == 1


def test_a_local_servers_context_window_is_read_from_its_model_list(served, openai_server):
    openai_server.models = ["local-model"]
    openai_server.model_fields = {"local-model": {"max_model_len": 8192}}  # as vLLM lists it
    served.run("%%agent --new w\nhello")
    plain, _ = shown(served.run("%agent context"))
    assert " of 8,192 (" in plain and "% of the context window" in plain
    preview, _ = shown(served.run("%agent context --next again"))
    assert " of 8,192 (" in preview


def test_llama_cpp_lists_its_window_under_meta_and_a_window_set_by_hand_wins(openai_server):
    from nbsessions import Agent
    from nbsessions.llm import OpenAIChat

    openai_server.models = ["llama"]
    openai_server.model_fields = {"llama": {"meta": {"n_ctx_train": 4096, "n_params": 1}}}
    model = OpenAIChat("llama", base_url=openai_server.base_url, max_retries=0)
    assert Agent(model=model).preview_context("hi").context_window == 4096
    model.context_window = 2048
    assert Agent(model=model).preview_context("hi").context_window == 2048
    unlisted = OpenAIChat("other", base_url=openai_server.base_url, max_retries=0)
    assert unlisted.context_window is None
