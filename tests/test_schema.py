import json

import pytest

from nbsessions.schema import Message, Metrics, RunOutput, RunStatus, Session


def _json_round_trip(record):
    return type(record).from_dict(json.loads(json.dumps(record.to_dict())))


def test_run_output_survives_a_json_round_trip_with_nested_records():
    run = RunOutput(session_id="s1", user_id="u", status=RunStatus.completed, input="hi", content="hello",
                    messages=[Message(role="user", content="hi"), Message(role="assistant", content="hello",
                                                                            from_history=True)],
                    metrics=Metrics(input_tokens=3, output_tokens=5, total_tokens=8, cost=0.01,
                                    time_to_first_token=0.2, duration=0.5),
                    cell_id="c1", execution_count=4, tags=["x"])
    back = _json_round_trip(run)
    assert back == run
    assert isinstance(back.status, RunStatus) and isinstance(back.messages[1], Message)
    assert back.messages[1].from_history is True


def test_session_survives_a_json_round_trip():
    session = Session(session_name="n", user_id="u", session_state={"a": [1, 2]}, metadata={"k": "v"},
                      forked_from={"session_id": "s0", "run_id": "r0"})
    assert _json_round_trip(session) == session


def test_ids_are_fresh_uuid4_strings():
    a, b = RunOutput(session_id="s"), RunOutput(session_id="s")
    assert a.run_id != b.run_id and len(a.run_id) == 36
    assert Session().session_id != Session().session_id


def test_unknown_keys_from_a_newer_file_are_ignored_and_missing_required_keys_are_named():
    data = RunOutput(session_id="s").to_dict() | {"field_from_the_future": 1}
    assert RunOutput.from_dict(data).session_id == "s"
    with pytest.raises(ValueError, match="session_id"):
        RunOutput.from_dict({"run_id": "r"})


def test_session_totals_sum_tokens_and_durations_and_average_ttft():
    total = Metrics.total([
        Metrics(input_tokens=1, output_tokens=2, total_tokens=3, time_to_first_token=0.1, duration=1.0, cost=0.5),
        Metrics(input_tokens=10, output_tokens=20, total_tokens=30, time_to_first_token=0.3, duration=2.0),
    ])
    assert (total.input_tokens, total.output_tokens, total.total_tokens) == (11, 22, 33)
    assert total.duration == pytest.approx(3.0)
    assert total.time_to_first_token == pytest.approx(0.2)
    assert total.cost == pytest.approx(0.5)
    assert Metrics.total([Metrics()]).cost is None


def test_nested_usage_and_session_totals_count_every_token_kind_and_the_estimate_flag():
    parts = [Metrics(input_tokens=1, output_tokens=2, total_tokens=3, cached_tokens=4, reasoning_tokens=5, cost=0.25),
             Metrics(input_tokens=10, output_tokens=20, total_tokens=30, cached_tokens=40, reasoning_tokens=50,
                     tokens_estimated=True)]
    parent = Metrics(input_tokens=100, time_to_first_token=0.5, duration=9.0)
    for m in parts:
        parent.add_usage_of(m)
    total = Metrics.total(parts)
    for summed in (parent, total):
        assert (summed.output_tokens, summed.total_tokens, summed.cached_tokens, summed.reasoning_tokens) == \
            (22, 33, 44, 55)
        assert summed.tokens_estimated and summed.cost == pytest.approx(0.25)
    assert (parent.input_tokens, total.input_tokens) == (111, 11)
    assert (parent.time_to_first_token, parent.duration) == (0.5, 9.0)  # a nested run's time is inside its parent's
    assert (total.time_to_first_token, total.duration) == (None, None)


def test_label_is_the_name_or_a_short_id():
    assert Session(session_name="Chat").label == "Chat"
    session = Session()
    assert session.label == session.session_id[:8]


def test_one_session_label_names_the_session_and_its_short_id():
    from nbsessions.schema import Session

    named, unnamed = Session(session_id="1a2b3c4d-rest", session_name="eda"), Session(session_id="9f8e7d6c-rest")
    assert (named.label, named.label_with_id) == ("eda", "eda (1a2b3c4d)")
    assert unnamed.label == unnamed.label_with_id == "9f8e7d6c"


def test_json_typed_by_people_refuses_nan_and_infinity_in_every_editor():
    import json

    import pytest

    from nbsessions.panel.paused_run import parse_value
    from nbsessions.panel.state_editor import parse_state
    from nbsessions.validate import loads

    assert loads('{"a": [1, null]}') == {"a": [1, None]}
    for word in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match=f"{word} is not JSON"):
            loads(f'{{"a": {word}}}')
        with pytest.raises(ValueError, match=f"{word} is not JSON"):
            parse_state(f'{{"a": {word}}}')
        assert parse_value(word) == word  # a typed field keeps the word as text
    with pytest.raises(json.JSONDecodeError):
        loads("{")
