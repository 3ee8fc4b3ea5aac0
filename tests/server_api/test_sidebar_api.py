"""The sidebar's REST API on a real Jupyter Server (pytest-jupyter): a notebook's sessions and runs, read without a
kernel through the store classes, with the token, the server's root, the user and the database password guarded."""

from __future__ import annotations

import json
import time

import nbformat
import pytest
from tornado.httpclient import HTTPClientError

from nbsessions import Agent, RunOutput, RunStatus, Session, TinyDb
from nbsessions.db.locate import db_path_for
from nbsessions.llm import FunctionModel
from nbsessions.records.metrics import Metrics

API = ("nbsessions", "api")


def write_notebook(root, name="analysis.ipynb"):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def reply(messages):
    return f"Reply to: {messages[-1].content}"


def fill(db, user=None):
    """Two sessions: 'pandas help' (two runs, the second from a cell) and 'plots' (one run)."""
    agent = Agent(model=FunctionModel(reply), db=db, user_id=user)
    first = agent.create_session("pandas help")
    agent.run("How do I group a dataframe?", session_id=first.session_id)
    agent.run("And pivot it?", session_id=first.session_id, cell_id="cell-42", execution_count=7)
    second = agent.create_session("plots")
    agent.run("Draw a histogram of ages", session_id=second.session_id)
    return first, second


async def get(jp_fetch, *parts, **params):
    response = await jp_fetch(*API, *parts, params=params)
    assert response.code == 200
    return json.loads(response.body)


async def status_of(jp_fetch, *parts, **params):
    with pytest.raises(HTTPClientError) as failed:
        await jp_fetch(*API, *parts, params=params)
    return failed.value.code, json.loads(failed.value.response.body)


async def test_lists_a_notebooks_sessions_newest_first_from_the_file_beside_it(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir / "work")
    db = TinyDb(db_path_for(notebook))
    pandas, plots = fill(db)
    db.close()

    body = await get(jp_fetch, "sessions", path="work/analysis.ipynb")

    assert body["store"] == {"kind": "file", "label": "analysis.nbsessions.json"}
    assert [s["name"] for s in body["sessions"]] == ["plots", "pandas help"]
    assert [s["runs"] for s in body["sessions"]] == [1, 2]
    assert body["version"].startswith("file:")
    runs = await get(jp_fetch, "sessions", pandas.session_id, "runs", path="work/analysis.ipynb")
    assert runs["session"]["name"] == "pandas help"
    assert [r["input"] for r in runs["runs"]] == ["And pivot it?", "How do I group a dataframe?"]
    newest = runs["runs"][0]
    assert newest["content"] == "Reply to: And pivot it?"
    assert (newest["status"], newest["cell_id"], newest["execution_count"]) == ("completed", "cell-42", 7)
    assert newest["total_tokens"] > 0 and newest["model"]
    # a FunctionModel's counts are estimated and it has no price: spelled as the footer spells them
    assert newest["tokens_text"] == f"~{newest['total_tokens']:,}" and newest["cost_text"] == "cost n/a"
    assert runs["session"]["tokens_text"] == f"~{runs['session']['total_tokens']:,}"


async def test_rows_carry_tokens_cost_and_duration_spelled_as_every_other_surface_spells_them(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    with TinyDb(db_path_for(notebook)) as db:
        session = Session(session_name="priced")
        db.upsert_session(session)
        db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.completed, input="q", content="a",
                                metrics=Metrics(input_tokens=12_000, output_tokens=345, total_tokens=12_345,
                                                duration=1.2, cost=0.0000145)))
    body = await get(jp_fetch, "sessions", session.session_id, "runs", path="analysis.ipynb")
    run, = body["runs"]
    assert (run["tokens_text"], run["cost_text"], run["duration_text"]) == ("12,345", "$0.0000145", "1.20 s")
    assert run["tokens_estimated"] is False
    assert (body["session"]["tokens_text"], body["session"]["cost_text"]) == ("12,345", "$0.0000145")


async def test_a_notebook_without_a_store_lists_nothing_and_creates_nothing(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    body = await get(jp_fetch, "sessions", path="analysis.ipynb")
    assert body["sessions"] == [] and body["version"] == "none"
    assert not db_path_for(notebook).exists()


async def test_a_store_deleted_after_it_was_read_lists_nothing_and_a_new_one_is_read(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    path = db_path_for(notebook)
    db = TinyDb(path)
    fill(db)
    db.close()
    assert len((await get(jp_fetch, "sessions", path="analysis.ipynb"))["sessions"]) == 2
    path.unlink()
    assert (await get(jp_fetch, "sessions", path="analysis.ipynb"))["sessions"] == []
    db = TinyDb(path)
    Agent(model=FunctionModel(reply), db=db).create_session("fresh")
    db.close()
    assert [s["name"] for s in (await get(jp_fetch, "sessions", path="analysis.ipynb"))["sessions"]] == ["fresh"]


async def test_a_damaged_store_is_one_line_of_error_without_a_traceback(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    db_path_for(notebook).write_text("this is not a journal\n{broken\n")
    code, body = await status_of(jp_fetch, "sessions", path="analysis.ipynb")
    assert code == 500 and set(body) == {"message"}
    assert body["message"].startswith("cannot read the sessions: ") and "\n" not in body["message"].strip()


async def test_search_matches_every_word_in_names_prompts_or_replies(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    fill(db)
    db.close()

    async def names(query):
        body = await get(jp_fetch, "sessions", path="analysis.ipynb", q=query)
        return [s["name"] for s in body["sessions"]]

    assert await names("PANDAS") == ["pandas help"]  # the name
    assert await names("histogram") == ["plots"]  # a prompt
    assert await names("reply pivot") == ["pandas help"]  # a reply and a prompt, both needed
    assert await names("pivot histogram") == []
    assert await names("  ") == ["plots", "pandas help"]


async def test_requests_without_the_token_or_with_a_wrong_one_are_refused(jp_fetch, jp_root_dir, http_server_client,
                                                                          jp_base_url):
    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    fill(db)
    db.close()
    for endpoint in ("sessions", "version"):
        url = f"{jp_base_url}nbsessions/api/{endpoint}?path=analysis.ipynb"
        for headers in ({}, {"Authorization": "token not-the-token"}):
            response = await http_server_client.fetch(url, headers=headers, raise_error=False)
            assert response.code == 403, (endpoint, headers)
            assert b"pandas" not in response.body
    assert (await jp_fetch(*API, "version", params={"path": "analysis.ipynb"})).code == 200


@pytest.mark.parametrize("path", ["../outside/analysis.ipynb", "/outside/analysis.ipynb", "link/analysis.ipynb",
                                  "analysis.nbsessions.json", "", "a/../../outside/analysis.ipynb"])
async def test_a_path_outside_the_root_or_not_a_notebook_is_refused(jp_fetch, jp_root_dir, path):
    outside = write_notebook(jp_root_dir.parent / "outside")
    db = TinyDb(db_path_for(outside))
    fill(db)
    db.close()
    (jp_root_dir / "link").symlink_to(outside.parent, target_is_directory=True)
    write_notebook(jp_root_dir)
    for endpoint in ("sessions", "version"):
        code, body = await status_of(jp_fetch, endpoint, path=path)
        assert code == 403
        assert "pandas" not in json.dumps(body)


async def test_runs_come_newest_first_a_page_at_a_time(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    agent = Agent(model=FunctionModel(reply), db=db)
    session = agent.create_session("long").session_id
    for i in range(5):
        agent.run(f"question {i}", session_id=session)
    db.close()
    page = await get(jp_fetch, "sessions", session, "runs", path="analysis.ipynb", last="2")
    assert [r["input"] for r in page["runs"]] == ["question 4", "question 3"] and page["more"] is True
    whole = await get(jp_fetch, "sessions", session, "runs", path="analysis.ipynb", last="5")
    assert len(whole["runs"]) == 5 and whole["more"] is False
    code, body = await status_of(jp_fetch, "sessions", session, "runs", path="analysis.ipynb", last="many")
    assert code == 400 and body["message"] == "last must be a whole number of runs"


async def test_a_page_of_a_team_session_holds_that_many_top_level_runs(jp_fetch, jp_root_dir):
    """Members' runs are stored beside their team's: a page once read the newest N runs of any kind and showed
    the top-level ones among them (here none of 2); it reads on until it has N."""
    from nbsessions import RunOutput, RunStatus

    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    agent = Agent(model=FunctionModel(reply), db=db)
    session = agent.create_session("team").session_id
    for i in range(3):
        run = agent.run(f"question {i}", session_id=session)
        for member in ("researcher", "writer"):
            db.upsert_run(RunOutput(session_id=session, parent_run_id=run.run_id, agent_name=member,
                                    status=RunStatus.completed, input=f"{member} {i}", content="done"))
    db.close()
    page = await get(jp_fetch, "sessions", session, "runs", path="analysis.ipynb", last="2")
    assert [r["input"] for r in page["runs"]] == ["question 2", "question 1"] and page["more"] is True


async def test_a_session_id_that_is_not_in_the_store_is_not_found(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    fill(db)
    db.close()
    code, body = await status_of(jp_fetch, "sessions", "no-such-session", "runs", path="analysis.ipynb")
    assert code == 404 and body["message"] == "no such session in this notebook's store"


async def test_the_version_changes_when_another_process_stores_a_run(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    pandas, _ = fill(db)
    before = (await get(jp_fetch, "version", path="analysis.ipynb"))["version"]
    assert (await get(jp_fetch, "version", path="analysis.ipynb"))["version"] == before
    Agent(model=FunctionModel(reply), db=db).run("One more question", session_id=pandas.session_id)
    db.close()
    after = (await get(jp_fetch, "version", path="analysis.ipynb"))["version"]
    assert after != before
    runs = await get(jp_fetch, "sessions", pandas.session_id, "runs", path="analysis.ipynb")
    assert runs["runs"][0]["input"] == "One more question" and runs["version"] == after


async def test_an_api_key_the_server_knows_is_never_sent_even_when_a_store_holds_it(jp_fetch, jp_root_dir,
                                                                                   monkeypatch):
    key = "sk-test-0123456789abcdefXYZ"
    notebook = write_notebook(jp_root_dir)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    db = TinyDb(db_path_for(notebook))  # written by a process that did not know the key
    session = Agent(model=FunctionModel(lambda m: f"the key is {key}"), db=db).run(f"remember {key}").session_id
    db.close()
    monkeypatch.setenv("OPENAI_API_KEY", key)  # the server's environment has it
    runs = await jp_fetch(*API, "sessions", session, "runs", params={"path": "analysis.ipynb"})
    listing = await jp_fetch(*API, "sessions", params={"path": "analysis.ipynb", "q": "remember"})
    body = runs.body.decode() + listing.body.decode()
    assert "[redacted]" in body
    assert not any(piece in body for piece in password_pieces(key))


# -- a shared PostgreSQL store ---------------------------------------------------------------------------------
@pytest.fixture
def shared_store(postgres_server, postgres_url, monkeypatch):
    """$NBSESSIONS_DB_URL names a database whose URL carries a password; sessions of ann and of bob in it."""
    from pg_server import PASSWORD, PASSWORD_USER

    from nbsessions.db.postgres import PostgresDb

    dbname = postgres_url.rsplit("/", 1)[1].split("?")[0]
    url = postgres_server.url(dbname, user=PASSWORD_USER, password=PASSWORD)
    db = PostgresDb(url)
    own = fill(db, user="ann")
    theirs = fill(db, user="bob")
    monkeypatch.setenv("NBSESSIONS_DB_URL", url)
    monkeypatch.setenv("JUPYTERHUB_USER", "ann")
    yield db, own, theirs, PASSWORD
    db.close()


def password_pieces(password):
    return [password[i:i + 8] for i in range(len(password) - 7)]


@pytest.mark.postgres
async def test_a_shared_database_shows_only_the_users_sessions(jp_fetch, jp_root_dir, shared_store):
    _db, own, theirs, password = shared_store
    write_notebook(jp_root_dir)
    body = await get(jp_fetch, "sessions", path="analysis.ipynb")
    assert body["user"] == "ann" and body["store"]["kind"] == "postgresql"
    assert sorted(s["session_id"] for s in body["sessions"]) == sorted(s.session_id for s in own)
    assert {s["user_id"] for s in body["sessions"]} == {"ann"}
    code, refused = await status_of(jp_fetch, "sessions", theirs[0].session_id, "runs", path="analysis.ipynb")
    assert code == 404 and "pandas" not in json.dumps(refused)
    searched = await get(jp_fetch, "sessions", path="analysis.ipynb", q="pandas")
    assert [s["session_id"] for s in searched["sessions"]] == [own[0].session_id]


@pytest.mark.postgres
async def test_the_database_password_never_appears_in_a_response(jp_fetch, jp_root_dir, shared_store,
                                                                 postgres_server, monkeypatch):
    _db, own, _theirs, password = shared_store
    write_notebook(jp_root_dir)
    bodies = [(await jp_fetch(*API, *parts, params={"path": "analysis.ipynb"})).body.decode()
              for parts in (("sessions",), ("sessions", own[0].session_id, "runs"), ("version",))]
    assert "***" in json.loads(bodies[0])["store"]["label"]
    from pg_server import PASSWORD_USER

    wrong = postgres_server.url("no_such_database", user=PASSWORD_USER, password=password)
    monkeypatch.setenv("NBSESSIONS_DB_URL", wrong + "&connect_timeout=2" if "?" in wrong else wrong)
    code, error = await status_of(jp_fetch, "sessions", path="analysis.ipynb")
    assert code == 500 and error["message"].startswith("cannot read the sessions")
    bodies.append(json.dumps(error))
    for body in bodies:
        assert not any(piece in body for piece in password_pieces(password)), body


@pytest.mark.postgres
async def test_the_version_changes_when_a_run_lands_in_the_shared_database(jp_fetch, jp_root_dir, shared_store):
    db, own, _theirs, _password = shared_store
    write_notebook(jp_root_dir)
    before = (await get(jp_fetch, "version", path="analysis.ipynb"))["version"]
    Agent(model=FunctionModel(reply), db=db, user_id="ann").run("ann's question", session_id=own[0].session_id)
    deadline = time.monotonic() + 10
    while (await get(jp_fetch, "version", path="analysis.ipynb"))["version"] == before:
        assert time.monotonic() < deadline, "no change heard within 10 s"
    runs = await get(jp_fetch, "sessions", own[0].session_id, "runs", path="analysis.ipynb")
    assert runs["runs"][0]["input"] == "ann's question"



def test_files_of_notebooks_left_idle_are_closed_and_reopened_when_asked(tmp_path):
    from nbsessions.records.errors import StorageError
    from nbsessions.server.stores import StoreCache, locate

    for name in ("a.ipynb", "b.ipynb"):
        db = TinyDb(db_path_for(write_notebook(tmp_path, name)))
        fill(db)
        db.close()
    stores = StoreCache(idle_close=0.0)  # every other file is idle by the next request
    first = stores.agent(locate(tmp_path, "a.ipynb"))
    assert len(first.get_sessions()) == 2
    assert len(stores.agent(locate(tmp_path, "b.ipynb")).get_sessions()) == 2
    with pytest.raises(StorageError, match="closed"):
        first.get_sessions()
    assert len(stores.agent(locate(tmp_path, "a.ipynb")).get_sessions()) == 2
    stores.close()
