"""``%%agent --team NAME`` / ``--workflow NAME`` / ``--agent NAME`` cells, and ``%agent register``.

A registered object runs on a copy bound to the notebook's store, in the notebook's active session (or ``-s``,
``--new``), as the notebook's user, so its runs sit in the same history as the notebook's own cells. Teams and
agents stream into the cell like any reply (a team's footer counts its members' tokens; a line under it says
what each member did). Workflows do not stream: the cell shows that the workflow runs, then each step with its
status and output, the final output and a footer. Everything is checked before anything is written.
"""

from __future__ import annotations

import time

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display

from nbsessions.magic.cellopts import CellOptions, Prepared
from nbsessions.magic.cellrun import CellError, CellInterrupted, LiveOutput, waiting_bundle
from nbsessions.magic.commands import command, parse_rest
from nbsessions.magic.nested import member_summary, workflow_bundle
from nbsessions.magic.notebook import NotebookAgent
from nbsessions.magic.registry import describe, rebind
from nbsessions.records.errors import SessionAccessError
from nbsessions.records.schema import RunOutput, RunStatus, Session
from nbsessions.runs.agent import Agent
from nbsessions.runs.team import Team
from nbsessions.runs.workflows.blocks import is_block
from nbsessions.runs.workflows.workflow import Workflow, WorkflowError


def run_registered(nb: NotebookAgent, opts: CellOptions, body: str) -> RunOutput:
    """Run the cell through the team, workflow or agent registered under the name the cell gives."""
    assert opts.registered is not None
    kind, name = opts.registered
    target = nb.registry.get(name, kind)
    ready = nb.prepare(opts, body, resolve_model=False)
    runner = rebind(target, nb.agent.db)
    runner.add_listener(nb.agent.sessions.emit)  # the panel listens to the notebook's agent: tell it about these runs
    session = ready.session or nb.new_session(opts.new, ready.user)
    if isinstance(runner, Workflow):
        return _run_workflow(nb, runner, name, ready, session, opts.output)
    return _run_agent(nb, runner, f"{kind} {name}", ready, session, opts)


def _run_agent(nb: NotebookAgent, runner: Agent, what: str, ready: Prepared, session: Session,
               opts: CellOptions) -> RunOutput:
    """Stream a registered agent's or team's reply with the usual footer; a team adds its member line."""
    try:
        stream = runner.run(ready.prompt, session_id=session.session_id, user_id=ready.user,
                            session_state=ready.state, stream=True, cell_id=nb.cell_id,
                            execution_count=nb.execution_count, **nb.history_settings(opts))
    except (SessionAccessError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    try:
        return nb.show(stream, session, runner.model, live=opts.stream, output=opts.output, runner=runner,
                       waiting=what)
    finally:  # after a failure too: what the members did is part of what happened
        if isinstance(runner, Team):
            display(member_summary(stream.run, runner.member_runs(stream.run.run_id)), raw=True)


class _StepProgress:
    """Follows a workflow run through the events it emits: learns its id, and shows its steps as they finish."""

    def __init__(self, nb: NotebookAgent, out: LiveOutput, label: str, total: int | None) -> None:
        self.agent, self.out, self.label, self.total = nb.agent, out, label, total  # reads are owner-checked
        self.session_id: str | None = None
        self.started = int(time.time())  # whole seconds, as a run's created_at
        self.run_id: str | None = None

    def __call__(self, event: str, session_id: str) -> None:
        if event != "run":
            return
        if self.run_id is None:  # the first event comes right after the workflow stored its new run
            newest = self.agent.get_runs(session_id, last=1)
            if newest and newest[-1].kind == "workflow" and newest[-1].created_at >= self.started:
                self.run_id, self.session_id = newest[-1].run_id, session_id
            return
        run = self.agent.get_run_output(self.run_id, session_id=self.session_id)
        if run is not None and run.status == RunStatus.running and run.steps:
            self.out.show(workflow_bundle(run, self.label, self.total))

    def cancel(self) -> RunOutput | None:
        """The run as Ctrl-C left it: ``Workflow.run`` stores it as cancelled, with the steps done kept."""
        return self.agent.get_run_output(self.run_id, session_id=self.session_id) if self.run_id else None


def _run_workflow(nb: NotebookAgent, flow: Workflow, name: str, ready: Prepared, session: Session,
                  output: str | None) -> RunOutput:
    """Run a workflow with the cell as input: the steps show as they finish, then the final output and footer."""
    label, count = session.label_with_id, len(flow.steps)
    total = None if any(map(is_block, flow.steps)) else count  # a block's inner steps are known only as it runs
    out = LiveOutput()
    out.show(waiting_bundle(f"workflow {name}: {count} steps · {label}"))
    progress = _StepProgress(nb, out, label, total)
    flow.add_listener(progress)
    run: RunOutput | None = None
    try:
        run = flow.run(ready.prompt, session_id=session.session_id, user_id=ready.user,
                       session_state=ready.state, cell_id=nb.cell_id)
    except WorkflowError as exc:
        run = exc.run
        out.show(workflow_bundle(run, label, total))
        raise CellError(str(exc), kind="WorkflowError", run=run) from None
    except KeyboardInterrupt:
        run = progress.cancel()
        if run is None:
            out.clear()
            raise CellInterrupted(None, "interrupted before the workflow run started") from None
        out.show(workflow_bundle(run, label, total))
        raise CellInterrupted(run, "interrupted: the workflow run is kept as cancelled, with the steps that "
                                   "finished") from None
    finally:
        if output and run is not None:
            nb.user_ns[output] = run
    out.show(workflow_bundle(run, label, total))
    nb.name_new_session(run)
    return run


# -- %agent register ---------------------------------------------------------------------------------
_REGISTER = MagicArgumentParser(prog="%agent register")
_REGISTER.add_argument("name", nargs="?", help="the name cells use: %%agent --team NAME")
_REGISTER.add_argument("variable", nargs="?", help="the Team, Workflow or Agent (a notebook variable)")
_REGISTER.add_argument("--remove", metavar="NAME", help="forget what is registered as NAME")


@command("register")
def register(nb: NotebookAgent, rest: str) -> None:
    """``%agent register NAME VAR``: cells can run VAR (a Team, Workflow or Agent) with ``--team NAME`` etc.

    Bare, lists what is registered; ``--remove NAME`` forgets one.
    """
    args = parse_rest(_REGISTER, rest)
    if args.remove is not None:
        if args.name is not None:
            raise UsageError("use either %agent register NAME VAR or %agent register --remove NAME, not both")
        entry = nb.registry.remove(args.remove)
        print(f"removed {entry.kind} {entry.name}")
        return
    if args.name is None:
        if not len(nb.registry):
            print("nothing registered: %agent register NAME VAR registers a Team, a Workflow or an Agent")
            return
        print("registered:\n" + "\n".join(f"  {e.name}: {describe(e.value)} — %%agent --{e.kind} {e.name}"
                                          for e in nb.registry))
        return
    if args.variable is None:
        raise UsageError(f"give the variable to register: %agent register {args.name} VARIABLE")
    value = nb.variable(args.variable, f"%agent register {args.name}")
    entry, replaced = nb.registry.add(args.name, value, args.variable)
    print(f"{'replaced' if replaced else 'registered'} {entry.name}: {describe(entry.value)}; "
          f"run it with %%agent --{entry.kind} {entry.name}")
