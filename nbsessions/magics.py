"""``%%agent`` and ``%agent``: the IPython surface of nbsessions.

The magic only parses; ``NotebookAgent`` (the notebook's session, model and database) does the work, and
``commands`` holds the ``%agent`` subcommands. Options are traitlets, so ``%config AgentMagics.model = ...`` and
an IPython profile (``c.AgentMagics.model = ...``) both work.
"""

from __future__ import annotations

import contextlib
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, observe, validate

from nbsessions.agent import Agent
from nbsessions.commands import run_command, unquote
from nbsessions.notebook import CellOptions, NotebookAgent


@magics_class
class AgentMagics(Magics):
    """Agent sessions in notebook cells: ``%%agent`` runs the cell as a prompt, ``%agent`` manages sessions."""

    model = Unicode("", help="Model for %%agent cells, e.g. 'gpt-5.2', 'llama3.2' or 'offline'. Empty: the "
                    "NBSESSIONS_MODEL env var, else gpt-5.2 when OPENAI_API_KEY is set, else the offline "
                    "model.").tag(config=True)
    db_path = Unicode("", help="Database file. Empty: <notebook>.nbsessions.json beside the notebook, or "
                      "nbsessions.json in the working directory when the notebook is unknown.").tag(config=True)
    base_url = Unicode("", help="URL of an OpenAI-compatible server (Ollama, vLLM, llama.cpp); without an API "
                       "key a placeholder key is sent.").tag(config=True)
    api = Enum(("auto", "chat", "responses"), "auto", help="OpenAI API to use: 'auto' picks Chat Completions "
               "for a custom base_url and the Responses API for OpenAI itself.").tag(config=True)
    history = Int(3, help="How many earlier runs of the session each cell sends as history (0: none).").tag(
        config=True)
    stream = Bool(True, help="Stream replies into the cell as they arrive (--no-stream for one cell)."
                  ).tag(config=True)
    user = Unicode("", help="User id for sessions; a user's sessions are never shown to, or written by, another "
                   "user. Empty: no user.").tag(config=True)
    update_interval = Float(0.1, help="Seconds between in-place updates of a streaming reply (the final one "
                            "always shows).").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.notebook = NotebookAgent(self, shell.user_ns if shell is not None else {})

    @property
    def agent(self) -> Agent:
        """The notebook's Agent, on the notebook's database (opened on first use)."""
        return self.notebook.agent

    @validate("history")
    def _check_history(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError("AgentMagics.history must be 0 or more runs")
        return proposal["value"]

    @observe("db_path")
    def _db_path_changed(self, change: Any) -> None:
        if hasattr(self, "notebook"):  # not while a profile's config is applied in __init__
            self.notebook.switch_db(None)  # reopened lazily at the new path

    # -- IPython events: which cell is running -----------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        """Remember the running cell's id (front ends send it; IPython passes it on) for re-run supersede."""
        self.notebook.cell_id = getattr(info, "cell_id", None) or None

    def post_run_cell(self, result: Any) -> None:
        self.notebook.cell_id = None

    # -- the magic ---------------------------------------------------------------------------------
    @magic_arguments(name="%agent")
    @argument("-s", "--session", metavar="SESSION", help="run in this session (name or id prefix) for this cell")
    @argument("-u", "--user", metavar="USER", help="user id for this cell")
    @argument("-m", "--model", metavar="MODEL", help="model for this cell")
    @argument("--new", nargs="?", const="", metavar="NAME",
              help="start a new session (optionally named) and make it the notebook's active session")
    @argument("--history", type=int, metavar="N", help="send the newest N earlier runs as history")
    @argument("--no-history", action="store_true", help="send no history")
    @argument("--system", metavar="TEXT", help="system instructions; {key} is filled from session state")
    @argument("--state", metavar="JSON", help="merge this JSON object into the session state first")
    @argument("--no-stream", dest="stream", action="store_const", const=False, help="show the reply at the end")
    @argument("--stream", dest="stream", action="store_const", const=True, help="stream the reply")
    @argument("-o", "--output", metavar="VAR", help="store the RunOutput in this variable")
    @argument("--result", action="store_true", help="also return the reply text as the cell's value")
    @line_cell_magic("agent")
    def agent_magic(self, line: str, cell: str | None = None) -> Any:
        """Ask the notebook's agent: the cell body is the prompt, ``{expr}`` is filled from your variables.

        Names not among your variables are looked up in the session state. ``{{expr}}`` keeps the braces;
        JSON and other text with braces is left as written. The reply streams into the cell, then a footer:
        model · session · tokens · time to first token · duration · cost.

        As a line magic, ``%agent SUBCOMMAND`` manages sessions::

            %agent                         status: database, session, model, user
            %agent sessions                table of sessions
            %agent use S | new [NAME] | rename NAME | fork [RUN] | delete S --yes
            %agent history [N] | state [JSON] | metrics | export md|json [PATH]
            %agent db [PATH] | user [NAME] | model [NAME] | panel
        """
        if cell is None:
            return run_command(self.notebook, line)
        opts = parse_cell_line(self.agent_magic, line)
        self.notebook.execution_count = getattr(self.shell, "execution_count", None)
        run = self.notebook.run_cell(opts, cell)
        return run.content if opts.result else None


def parse_cell_line(magic: Any, line: str) -> CellOptions:
    """The ``%%agent`` line as ``CellOptions``; contradictions are a ``UsageError`` (one red line)."""
    args = magic.parser.parse_args([unquote(token) for token in arg_split(line)])
    if args.session is not None and args.new is not None:
        raise UsageError("use either -s SESSION (an existing session) or --new [NAME], not both")
    if args.no_history and args.history is not None:
        raise UsageError("use either --history N or --no-history, not both")
    if args.history is not None and args.history < 0:
        raise UsageError("--history needs 0 or more runs")
    return CellOptions(session=args.session, user=args.user, model=args.model, new=args.new,
                       history=0 if args.no_history else args.history, system=args.system, state=args.state,
                       stream=args.stream, output=args.output, result=args.result)


def load_ipython_extension(ip: Any) -> AgentMagics:
    """Register ``AgentMagics`` and the cell-id hooks on ``ip``."""
    magics = AgentMagics(shell=ip)
    ip.register_magics(magics)
    ip.events.register("pre_run_cell", magics.pre_run_cell)
    ip.events.register("post_run_cell", magics.post_run_cell)
    return magics


def unload_ipython_extension(ip: Any) -> None:
    """Undo ``load_ipython_extension`` and close the database file."""
    magics = ip.magics_manager.registry.pop("AgentMagics", None)
    if magics is None:
        return
    for event, hook in (("pre_run_cell", magics.pre_run_cell), ("post_run_cell", magics.post_run_cell)):
        with contextlib.suppress(ValueError):
            ip.events.unregister(event, hook)
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("agent", None)
    if magics in ip.configurables:
        ip.configurables.remove(magics)
    magics.notebook.close()
