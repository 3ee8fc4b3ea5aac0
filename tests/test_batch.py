"""``batch``: a template over rows — input order, the concurrency bound, retries, and a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import pytest
from conftest import RecordingModel
from xss import active_content

from nbsessions import Agent, FunctionModel, InMemoryDb, ModelError, RunStatus
from nbsessions.explore import JobStatus, batch, contains, is_json
from nbsessions.explore.runner import is_retryable, retry_after
from nbsessions.llm import OpenAIChat
from nbsessions.schema import Message
from nbsessions.templating import TemplateError

FAST = {"base_delay": 0.001, "progress": False}
PATIENCE = 60  # seconds a scripted model waits for its cue: returns at once when set, long enough for a loaded CI box


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def chat(server, model_id: str = "gpt-test", **kw) -> OpenAIChat:
    return OpenAIChat(model_id, base_url=server.base_url, api_key="test-key-batch", max_retries=0, **kw)



def rows(n: int) -> list[dict]:
    return [{"n": i} for i in range(n)]


def test_results_come_back_in_input_order_whatever_order_they_finish_in():
    finished_order: list[int] = []
    done = [threading.Event() for _ in range(3)]

    def reverse(messages):  # row i waits for row i+1, so rows finish 2, 1, 0
        i = int(messages[-1].content.split()[-1])
        if i < 2:
            assert done[i + 1].wait(PATIENCE)
        finished_order.append(i)
        done[i].set()
        return f"done {i}"

    agent = Agent(model=FunctionModel(reverse))
    result = batch(agent, "row {n}", rows(3), concurrency=3, **FAST)
    assert finished_order == [2, 1, 0]
    assert [r.index for r in result] == [0, 1, 2]
    assert [r.content for r in result] == ["done 0", "done 1", "done 2"]
    assert [r.prompt for r in result] == ["row 0", "row 1", "row 2"]


def test_never_more_runs_in_flight_than_the_concurrency_and_exactly_that_many_at_once():
    lock = threading.Lock()
    in_flight, peak = 0, 0
    together = threading.Barrier(3, timeout=5)  # breaks (and fails the rows) unless 3 run at the same time

    def counted(messages):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        together.wait()
        with lock:
            in_flight -= 1
        return "ok"

    result = batch(Agent(model=FunctionModel(counted)), "q {n}", rows(9), concurrency=3, **FAST)
    assert result.counts() == {"completed": 9}
    assert peak == 3


def test_a_rate_limited_row_is_retried_with_backoff_until_it_succeeds(openai_server):
    openai_server.retry_after = None  # no Retry-After header: exponential backoff from base_delay
    openai_server.fail_next("error-429", "error-429")
    agent = Agent(model=chat(openai_server))
    result = batch(agent, "hello {n}", rows(1), retries=3, concurrency=1, **FAST)
    row = result[0]
    assert row.status == JobStatus.completed and row.content == "echo: hello 0"
    assert row.attempts == 3 and row.delays == [0.001, 0.002]
    runs = agent.get_runs(result.session_id)
    assert [r.status for r in runs] == [RunStatus.error, RunStatus.error, RunStatus.completed]
    assert runs[0].error == "429 rate limited: retry later" and runs[0].tags == ["batch", "row:0"]


def test_retries_give_up_after_the_limit_and_the_row_shows_the_last_error(openai_server):
    openai_server.retry_after = None
    openai_server.mode = "error-429"
    result = batch(Agent(model=chat(openai_server)), "hello {n}", rows(1), retries=2, **FAST)
    assert result[0].status == JobStatus.error and result[0].attempts == 3
    assert result[0].error == "429 rate limited: retry later" and len(openai_server.requests) == 3


def test_the_servers_retry_after_wins_over_the_backoff():
    calls = []

    def limited_once(messages):
        calls.append(1)
        if len(calls) == 1:
            raise ModelError("slow down", status_code=429, retry_after=0.02, kind="rate_limit")
        return "fine"

    result = batch(Agent(model=FunctionModel(limited_once)), "x {n}", rows(1), **FAST)
    assert result[0].status == JobStatus.completed and result[0].delays == [0.02]


def test_a_timeout_is_retried(openai_server):
    openai_server.fail_next("slow-2000")  # only the first request is slow
    agent = Agent(model=chat(openai_server, timeout=0.5))
    result = batch(agent, "hello {n}", rows(1), **FAST)
    assert result[0].status == JobStatus.completed and result[0].attempts >= 2
    assert agent.get_runs(result.session_id)[0].error.startswith("timed out after 0.5 s")


@pytest.mark.parametrize("mode", ["quota", "error-500", "error-401"])
def test_errors_that_waiting_cannot_fix_are_not_retried(openai_server, mode):
    openai_server.fail_next(mode)
    result = batch(Agent(model=chat(openai_server)), "hello {n}", rows(1), retries=3, **FAST)
    assert result[0].status == JobStatus.error and result[0].attempts == 1 and result[0].delays == []


def test_the_real_429_carries_typed_fields_that_retries_use(openai_server):
    openai_server.retry_after = 7
    with pytest.raises(ModelError) as caught:
        list(chat(openai_server, "error-429").stream([Message("user", "hi")]))
    assert str(caught.value) == "429 rate limited: retry in 7 s"
    assert (caught.value.status_code, caught.value.retry_after, caught.value.kind) == (429, 7, "rate_limit")
    assert is_retryable(caught.value) and retry_after(caught.value) == 7.0
    with pytest.raises(ModelError) as quota:
        list(chat(openai_server, "quota").stream([Message("user", "hi")]))
    assert quota.value.kind == "quota" and quota.value.retry_after is None
    assert not is_retryable(quota.value)


def test_retries_follow_the_typed_kind_never_the_wording_of_the_message():
    def worded(messages):  # says "quota" and "retry in" in prose, but is a plain rate limit
        raise ModelError("the quota of requests per minute is used: retry in 9 s", status_code=429,
                         kind="rate_limit", retry_after=0.001)

    result = batch(Agent(model=FunctionModel(worded)), "x {n}", rows(1), retries=2, **FAST)
    assert result[0].attempts == 3 and result[0].delays == [0.001, 0.001]

    def mislabelled(messages):  # reads like a rate limit, but the provider typed it as an exhausted quota
        raise ModelError("429 rate limited: retry in 0.01 s", status_code=429, kind="quota")

    result = batch(Agent(model=FunctionModel(mislabelled)), "x {n}", rows(1), retries=2, **FAST)
    assert result[0].attempts == 1 and result[0].delays == []


def test_the_sdks_own_retries_are_not_nested_inside_the_batch_retries(openai_server):
    openai_server.retry_after = 0.001
    openai_server.mode = "error-429"
    model = OpenAIChat("gpt-test", base_url=openai_server.base_url, api_key="test-key-batch", max_retries=3)
    result = batch(Agent(model=model), "hello {n}", rows(1), retries=2, **FAST)
    assert result[0].attempts == 3
    assert len(openai_server.requests) == 3  # nested, it would be 3 x 4 = 12
    assert model.max_retries == 3  # the agent's own model keeps its setting


def test_each_check_runs_once_per_row():
    seen: list[str] = []

    def judge(reply):
        seen.append(reply)
        return True

    result = batch(Agent(model=RecordingModel()), "q {n}", rows(3), checks=[judge], **FAST)
    assert result.counts() == {"completed": 3}
    assert sorted(seen) == ["echo q 0", "echo q 1", "echo q 2"]


def test_one_failing_row_among_many_keeps_its_place_and_the_others_finish(openai_server):
    openai_server.fail_next(None, None, "error-500")  # the third request fails
    result = batch(Agent(model=chat(openai_server)), "item {n}", rows(5), concurrency=1, **FAST)
    assert [r.status.value for r in result] == ["completed", "completed", "error", "completed", "completed"]
    assert result[2].error.startswith("500 server error") and result[3].content == "echo: item 3"


def test_ctrl_c_in_the_caller_keeps_finished_rows_and_runs_nothing_more():
    db = InMemoryDb()
    agent = Agent(model=RecordingModel(), db=db)

    def interrupt_after_three(row):
        if row.index == 2:
            raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning, match="3 of 8 rows completed"):
        result = batch(agent, "row {n}", rows(8), concurrency=1, on_row=interrupt_after_three, **FAST)
    assert result.interrupted
    assert [r.status.value for r in result] == ["completed"] * 3 + ["not_run"] * 5
    assert [r.content for r in result][:3] == ["echo row 0", "echo row 1", "echo row 2"]
    assert len(agent.get_runs(result.session_id)) == 3  # rows never started left nothing in the store
    assert result.pass_rate == 1.0 and "interrupted" in repr(result)


def test_ctrl_c_inside_a_run_cancels_that_row_and_stops():
    def interrupting(messages):
        if messages[-1].content == "row 2":
            raise KeyboardInterrupt
        return "ok"

    agent = Agent(model=FunctionModel(interrupting))
    with pytest.warns(RuntimeWarning):
        result = batch(agent, "row {n}", rows(6), concurrency=1, **FAST)
    assert [r.status.value for r in result] == ["completed", "completed", "cancelled", "not_run", "not_run",
                                                "not_run"]
    assert result[2].run.status == RunStatus.cancelled
    assert [r.status for r in agent.get_runs(result.session_id)] == [RunStatus.completed] * 2 + [RunStatus.cancelled]


class GatedAgent(Agent):
    """Releases the slow test model the moment a run is cancelled, so the test needs no timing."""

    gate = threading.Event()

    def cancel_run(self, run_id: str) -> None:
        super().cancel_run(run_id)
        self.gate.set()


def test_ctrl_c_cancels_runs_in_flight_which_keep_their_partial_reply():
    streaming = threading.Event()
    agent = GatedAgent(model=None)
    agent.gate = threading.Event()

    def model(messages):
        prompt = messages[-1].content
        if prompt == "slow":
            streaming.set()
            yield "partial "
            assert agent.gate.wait(PATIENCE)
            yield "rest"
        else:
            assert streaming.wait(PATIENCE)  # the fast row ends only once the slow one is streaming
            yield "fast"

    agent.model = FunctionModel(model)

    def stop(row):
        raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning):
        result = batch(agent, "{p}", [{"p": "fast"}, {"p": "slow"}, {"p": "never"}], concurrency=2, on_row=stop,
                       **FAST)
    assert [r.status.value for r in result] == ["completed", "cancelled", "not_run"]
    slow = result[1].run
    assert slow.status == RunStatus.cancelled and "rest" not in slow.content
    assert agent.db.get_run(slow.run_id).status == RunStatus.cancelled


def test_rows_may_be_a_dataframe_and_templates_keep_json_braces():
    class Frame:  # what batch uses of a pandas DataFrame
        columns = ["name"]

        def to_dict(self, orient):
            assert orient == "records"
            return [{"name": "Ada"}, {"name": "Grace"}]

    result = batch(Agent(model=RecordingModel()), 'Reply {"name": "{name}"}', Frame(), **FAST)
    assert [r.prompt for r in result] == ['Reply {"name": "Ada"}', 'Reply {"name": "Grace"}']
    assert [r.data for r in result] == [{"name": "Ada"}, {"name": "Grace"}]


def test_a_missing_field_fails_before_anything_runs():
    db = InMemoryDb()
    with pytest.raises(TemplateError, match="row 1: unknown name 'city'"):
        batch(Agent(model=RecordingModel(), db=db), "{city}", [{"city": "Oslo"}, {"town": "Bergen"}], **FAST)
    assert db.list_sessions() == []


def test_checks_pass_rates_and_records():
    def model(messages):
        n = int(messages[-1].content)
        return json.dumps({"n": n}) if n % 2 == 0 else f"n is {n}"

    result = batch(Agent(model=FunctionModel(model)), "{n}", [{"n": i, "status": "x"} for i in range(4)],
                   checks=[is_json, contains("n")], **FAST)
    assert result.pass_rate == 0.5
    assert result.check_pass_rates() == {"is_json": 0.5, "contains 'n'": 1.0}
    record = result.to_records()[1]
    assert record["n"] == 1 and record["row.status"] == "x" and record["status"] == "completed"
    assert record["check:is_json"] is False and record["passed"] is False and record["content"] == "n is 1"


def test_all_rows_go_to_one_new_session_named_after_the_template_with_no_history():
    agent = Agent(model=RecordingModel(), add_history_to_context=True)
    result = batch(agent, "question {n}", rows(3), concurrency=1, **FAST)
    session = agent.get_session(result.session_id)
    assert session.session_name == "batch: question {n} · echo"
    assert agent.model.prompts == [["question 0"], ["question 1"], ["question 2"]]  # rows never see each other


def test_progress_bar_counts_rows(capsys):
    batch(Agent(model=RecordingModel()), "q {n}", rows(3), progress=True, base_delay=0.001)
    assert "3/3" in capsys.readouterr().err


def test_html_lists_rows_with_sanitised_replies(monkeypatch):
    result = batch(Agent(model=RecordingModel("**hi**\n\n<script>alert(1)</script>")), "<b>{n}</b>",
                   rows(2), checks=[contains("hi")], **FAST)
    page = result._repr_html_()
    assert active_content(page) == []
    assert "<script" not in page and "<strong>hi</strong>" in page and "&lt;b&gt;0&lt;/b&gt;" in page
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="to_records"):
        result.to_pandas()


def test_a_real_sigint_stops_the_batch_and_cancels_what_is_streaming():
    agent = GatedAgent(model=None)
    agent.gate = threading.Event()
    a_streaming = threading.Event()

    def model(messages):
        if messages[-1].content == "a":
            a_streaming.set()
            yield "x"
        else:
            assert a_streaming.wait(PATIENCE)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: KeyboardInterrupt in the calling thread
            yield "partial"
        assert agent.gate.wait(PATIENCE)
        yield "more"

    agent.model = FunctionModel(model)
    with pytest.warns(RuntimeWarning, match="0 of 4 rows completed"):
        result = batch(agent, "{p}", [{"p": p} for p in "abcd"], concurrency=2, **FAST)
    assert [r.status.value for r in result] == ["cancelled", "cancelled", "not_run", "not_run"]
    assert [r.status for r in agent.get_runs(result.session_id)] == [RunStatus.cancelled] * 2


def test_a_status_code_alone_gives_the_kind_so_scripted_429s_are_retried():
    assert [ModelError("x", status_code=s).kind for s in (429, 408, 401, 404, 503, 400, None)] == [
        "rate_limit", "timeout", "auth", "not_found", "server", "request", None]
    calls = []

    def limited_once(messages):
        calls.append(1)
        if len(calls) == 1:
            raise ModelError("busy", status_code=429)
        return "fine"

    result = batch(Agent(model=FunctionModel(limited_once)), "x {n}", rows(1), **FAST)
    assert result[0].status == JobStatus.completed and result[0].attempts == 2


def test_a_batchs_retry_copies_share_the_one_client_of_the_agents_model(openai_server):
    """Each attempt runs on a copy of the model without the SDK's retries; a client built by one copy serves the
    model and every later copy, so a batch after a one-row batch builds no client per row (it built 100)."""
    agent = Agent(model=OpenAIChat("gpt-test", base_url=openai_server.base_url, api_key="test-key-batch"))
    batch(agent, "row {n}", rows(1), retries=2, **FAST)
    client = agent.model._client
    assert client is not None
    result = batch(agent, "row {n}", rows(12), concurrency=4, retries=2, **FAST)
    assert result.counts() == {"completed": 12}
    assert agent.model._client is client and agent.model.without_retries()._client is client
