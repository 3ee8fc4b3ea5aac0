"""How tests/data/format1.nbsessions.json was made: run with the format-1 code (commit 8395162), before history
references existed, so every run there holds full copies of the history it sent. Kept to show what the file holds;
running it today writes the current format instead."""
import os
import sys

from nbsessions import Agent
from nbsessions.db import TinyDb
from nbsessions.llm import OfflineModel

path = sys.argv[1]
if os.path.exists(path):
    os.remove(path)
with TinyDb(path) as db:
    agent = Agent(model=OfflineModel(), db=db, add_history_to_context=True, num_history_runs=2,
                  instructions="You help with {topic}.", session_state={"topic": "ml"}, user_id="ana")
    r1 = agent.run("First question", session_id="s-main")
    r2 = agent.run("Second question", session_id="s-main", cell_id="cell-a")
    r3 = agent.run("Second question, edited", session_id="s-main", cell_id="cell-a")  # supersedes r2
    r4 = agent.run("Third question", session_id="s-main")
    r5 = agent.regenerate(run_id=r4.run_id)
    r6 = agent.run("Fourth question", session_id="s-main", num_history_messages=3)
    fork = agent.fork_session("s-main", r3.run_id, session_name="forked")
    agent.run("In the fork", session_id=fork.session_id)
    agent.run("Other session", session_id="s-other", add_history_to_context=False)
print(path)
