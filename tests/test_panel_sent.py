"""The panel's "Sent" view: under each run of History, folded, exactly what the run sent — inert."""

from __future__ import annotations

import re

from notebook_shell import PAYLOAD
from xss import ActiveContent

from nbsessions import Agent, FunctionModel, RunOutput, RunStatus
from nbsessions.panel import SessionPanel


def test_each_run_has_a_folded_sent_view_naming_the_runs_its_history_came_from(db):
    agent = Agent(model=FunctionModel(lambda m: f"reply {len(m)}"), db=db, add_history_to_context=True,
                  instructions="Be brief.")
    first = agent.run("one")
    second = agent.run("two", session_id=first.session_id)
    panel = SessionPanel(agent)
    panel.select(first.session_id)
    page = panel.history.markup
    heads = re.findall(r'<details class="nbsessions-sent-view"[^>]*>', page)
    assert len(heads) == 2 and not any(" open" in h for h in heads)  # folded by default
    summaries = sorted(re.findall(r"<summary>(Sent ·[^<]*)</summary>", page))  # whichever order History uses
    assert summaries[0].startswith("Sent · 2 messages (0 from history) · ~")
    assert summaries[1].startswith("Sent · 4 messages (2 from history) · ~")
    assert page.count(f"#1 {first.run_id[:8]}") == 2  # the question and the reply of run #1, in run #2's view
    assert f'data-run="{second.run_id}"' in page and "Be brief." in page


def test_a_hostile_history_stays_text_in_the_sent_view(db):
    agent = Agent(model=FunctionModel(lambda m: PAYLOAD), db=db, add_history_to_context=True)
    first = agent.run(PAYLOAD)
    agent.run("next", session_id=first.session_id)
    panel = SessionPanel(agent)
    panel.select(first.session_id)
    views = "".join(re.findall(r'<details class="nbsessions-sent-view".*?</details>', panel.history.markup,
                               flags=re.S))
    checker = ActiveContent()
    checker.feed(views)
    assert checker.found == [] and views.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3


def test_runs_that_sent_nothing_get_no_sent_view(db):
    agent = Agent(model=FunctionModel(lambda m: "x"), db=db)
    session = agent.create_session("s")
    db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.error, input="never sent"))
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    assert "nbsessions-sent-view" not in panel.history.markup and "never sent" in panel.history.markup



def test_variants_of_one_prompt_show_once_the_context_they_all_sent(db):
    agent = Agent(model=FunctionModel(lambda m: "an answer"), db=db, add_history_to_context=True)
    earlier = agent.run("setup")
    agent.run("question", session_id=earlier.session_id)
    agent.regenerate(earlier.session_id, model=FunctionModel(lambda m: "another answer"))
    panel = SessionPanel(agent)
    panel.select(earlier.session_id)
    group, = panel.history.variant_groups
    head = group.children[0].value
    assert head.count('class="nbsessions-sent-view"') == 1
    assert "Sent · 3 messages (2 from history)" in head and f"#1 {earlier.run_id[:8]}" in head
    assert all("nbsessions-sent-view" not in column.children[0].value for column in group.columns.children)
