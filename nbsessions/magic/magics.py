"""``%%agent`` and ``%agent``: the IPython surface of nbsessions.

The magic only parses; ``NotebookAgent`` (the notebook's session, model and database) does the work,
``experiments`` runs ``--compare``/``--variants``/``--sweep`` and ``--over`` cells, and ``commands`` (with
``commands_runs``) holds the ``%agent`` subcommands. Options are traitlets, so ``%config AgentMagics.model = ...``
and an IPython profile (``c.AgentMagics.model = ...``) both work.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, observe, validate

from nbsessions.llm.openai_wire import is_openai_endpoint
from nbsessions.magic import commands_context, commands_inspect, commands_runs  # noqa: F401  (register their %agent subcommands)
from nbsessions.magic.cellopts import CellOptions, check_flag_count, split_args
from nbsessions.magic.commands import run_command, unquote
from nbsessions.magic.notebook import NotebookAgent
from nbsessions.magic.shown import redacted_output
from nbsessions.magic.teamcells import run_registered
from nbsessions.records.errors import InvalidInputError, StorageError, storage_warnings_as_lines
from nbsessions.records.redact import redact
from nbsessions.runs.agent import Agent


@magics_class
class AgentMagics(Magics):
    """Agent sessions in notebook cells: ``%%agent`` runs the cell as a prompt, ``%agent`` manages sessions."""

    model = Unicode("", help="Model for %%agent cells, e.g. 'gpt-5.2', 'llama3.2' or 'offline'. Empty: the "
                    "NBSESSIONS_MODEL env var, else gpt-5.2 when OPENAI_API_KEY is set, else the offline "
                    "model.").tag(config=True)
    db_path = Unicode("", help="Database file. Empty: <notebook>.nbsessions.json beside the notebook, or "
                      "nbsessions.json in the working directory when the notebook is unknown.").tag(config=True)
    db_url = Unicode("", help="A shared PostgreSQL database instead of the file, e.g. "
                     "'postgresql://user@host/db' (the password is better kept in ~/.pgpass or PGPASSWORD). Empty: "
                     "the NBSESSIONS_DB_URL env var when set and db_path is not.").tag(config=True)
    base_url = Unicode("", help="URL of an OpenAI-compatible server (Ollama, vLLM, llama.cpp); without an API "
                       "key a placeholder key is sent.").tag(config=True)
    api_key_env = Unicode("", help="Name of the environment variable holding the API key (default "
                          "OPENAI_API_KEY), e.g. 'GROQ_API_KEY'. The key itself is never stored in config, the "
                          "database or any output.").tag(config=True)
    api = Enum(("auto", "chat", "responses"), "auto", help="OpenAI API to use: 'auto' picks Chat Completions "
               "for a custom base_url and the Responses API for OpenAI itself.").tag(config=True)
    history = Int(3, help="How many earlier runs of the session each cell sends as history (0: none).").tag(
        config=True)
    history_tokens = Int(0, help="Token budget for each cell's context: the newest history that fits with the "
                         "system prompt and the prompt (0: no budget).").tag(config=True)
    summaries = Int(0, help="Keep a running summary of each session, refreshed in the background every N "
                    "completed runs and sent in place of the runs it covers (0: off).").tag(config=True)
    agentic_state = Bool(False, help="Give the model a tool with which it updates the session state."
                         ).tag(config=True)
    stream = Bool(True, help="Stream replies into the cell as they arrive (--no-stream for one cell)."
                  ).tag(config=True)
    user = Unicode("", help="User id for sessions; a user's sessions are never shown to, or written by, another "
                   "user. Empty: no user.").tag(config=True)
    update_interval = Float(0.1, help="Seconds between in-place updates of a streaming reply (the final one "
                            "always shows).").tag(config=True)

    warming: threading.Thread | None = None  # ``warm_up`` started by ``load_ipython_extension``

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.notebook = NotebookAgent(self, shell.user_ns if shell is not None else {})

    @property
    def agent(self) -> Agent:
        """The notebook's Agent, on the notebook's database (opened on first use)."""
        return self.notebook.agent

    @validate("history", "history_tokens", "summaries")
    def _check_count(self, proposal: Any) -> int:
        if not 0 <= proposal["value"] <= sys.maxsize:
            raise TraitError(f"AgentMagics.{proposal['trait'].name} must be 0 or more (and at most {sys.maxsize})")
        return proposal["value"]

    @validate("api_key_env")
    def _check_key_variable(self, proposal: Any) -> str:
        """A variable's name, not a key: the value is never echoed, in case a key was pasted here by mistake."""
        name = proposal["value"].strip()
        if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise TraitError("AgentMagics.api_key_env takes the name of an environment variable (such as "
                             "'GROQ_API_KEY'), not the key itself")
        return name

    @observe("history", "history_tokens", "summaries", "agentic_state", "user")
    def _agent_setting_changed(self, change: Any) -> None:
        if hasattr(self, "notebook"):
            self.notebook.configure()

    @observe("db_path", "db_url")
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
    @argument("--history-messages", type=int, metavar="N", help="send at most the newest N history messages")
    @argument("--history-tokens", type=int, metavar="N",
              help="fit the context in N tokens: system prompt and prompt first, then the newest history")
    @argument("--no-history", action="store_true", help="send no history")
    @argument("--system", metavar="TEXT", help="system instructions; {key} is filled from session state")
    @argument("--state", metavar="JSON", help="merge this JSON object into the session state first")
    @argument("--no-stream", dest="stream", action="store_const", const=False, help="show the reply at the end")
    @argument("--stream", dest="stream", action="store_const", const=True, help="stream the reply")
    @argument("-o", "--output", metavar="VAR", help="store the RunOutput in this variable")
    @argument("--result", action="store_true", help="also return the reply text as the cell's value")
    @argument("--compare", metavar="MODELS", help="run the prompt on each of these comma-separated models")
    @argument("--variants", metavar="VAR", help="compare system prompts: VAR is a dict name -> system prompt")
    @argument("--sweep", action="append", metavar="KEY=V1,V2",
              help="compare generation settings, e.g. temperature=0,0.7 (repeat for a grid)")
    @argument("--checks", metavar="VAR", help="a list of checks run on every reply of --compare or --over")
    @argument("--over", metavar="VAR",
              help="run the cell as a {field} template for each row of VAR (a list of dicts or a DataFrame)")
    @argument("-j", "--concurrency", type=int, metavar="N", help="runs at once for --compare and --over")
    @argument("--team", metavar="NAME", help="run the cell through the team registered as NAME")
    @argument("--workflow", metavar="NAME", help="run the workflow registered as NAME with the cell as input")
    @argument("--agent", metavar="NAME", help="run the cell on the agent registered as NAME")
    @line_cell_magic("agent")
    def agent_magic(self, line: str, cell: str | None = None) -> Any:
        """Ask the notebook's agent: the cell body is the prompt, ``{expr}`` is filled from your variables.

        Names not among your variables are looked up in the session state. ``{{expr}}`` keeps the braces;
        JSON and other text with braces is left as written. The reply streams into the cell, then a footer:
        model · session · tokens · time to first token · duration · cost.

        ``--compare``, ``--variants`` and ``--sweep`` show several replies to the cell side by side; ``--over VAR``
        runs the cell once per row of VAR, and then ``{field}`` comes from the row, not from your variables.
        ``--team NAME``, ``--workflow NAME`` and ``--agent NAME`` run the cell through what
        ``%agent register NAME VAR`` registered, in the active session.

        As a line magic, ``%agent SUBCOMMAND`` manages sessions::

            %agent                         status: database, session, model, user
            %agent sessions                table of sessions
            %agent use S | new [NAME] | rename NAME | fork [RUN] | delete S --yes
            %agent history [N] | state [JSON] | metrics | summary | export md|json|csv|ipynb [PATH] [--result VAR]
            %agent context [RUN] | context --next [PROMPT]   what a run sent / what the next cell would send
            %agent continue [RUN] [--approve|--reject] [--input JSON] [--results JSON]
            %agent regenerate [RUN] | variants [RUN] | keep RUN | tools [NAME ...] [--clear]
            %agent register [NAME VAR] [--remove NAME]
            %agent db [PATH|--default] | user [NAME] | model [NAME] | panel
        """
        try:
            with storage_warnings_as_lines(sys.stderr.write), redacted_output(self.shell):  # a torn last line: one
                value = self._dispatch(line, cell)  # plain line; every output redacted
        except (StorageError, InvalidInputError) as exc:  # an unusable store (or a database server that went
            # away: the next cell reconnects) or a bad value: one red line
            raise UsageError(redact(str(exc))) from None
        except UsageError as exc:  # shown by IPython after the block: a name or a value in it may quote a key
            raise UsageError(redact(str(exc))) from None
        return redact(value) if isinstance(value, str) else value

    def _dispatch(self, line: str, cell: str | None) -> Any:
        if cell is None:
            return run_command(self.notebook, line)
        opts = parse_cell_line(self.agent_magic, line)
        self.notebook.execution_count = getattr(self.shell, "execution_count", None)
        if opts.registered is not None:
            run = run_registered(self.notebook, opts, cell)
            return run.content if opts.result else None
        if opts.over is not None or opts.comparing:
            from nbsessions.magic import experiments  # prompt experiments load on their first cell

            run = experiments.run_batch if opts.over is not None else experiments.run_compare
            return run(self.notebook, opts, cell)
        run = self.notebook.run_cell(opts, cell)
        return run.content if opts.result else None


def parse_cell_line(magic: Any, line: str) -> CellOptions:
    """The ``%%agent`` line as ``CellOptions``; contradictions are a ``UsageError`` (one red line)."""
    args = magic.parser.parse_args([unquote(token) for token in split_args(line)])
    for flag, value in (("-m", args.model), ("-s", args.session), ("-u", args.user), ("-o", args.output)):
        if value is not None and not value.strip():
            raise UsageError(f"{flag} needs a value: an empty one would be silently ignored")
    if args.session is not None and args.new is not None:
        raise UsageError("use either -s SESSION (an existing session) or --new [NAME], not both")
    _check_history_flags(args)
    _check_modes(args)
    registered = _check_registered(args)
    check_flag_count(args.concurrency, "--concurrency", 1, "runs at once")
    return CellOptions(session=args.session, user=args.user, model=args.model, new=args.new,
                       history=0 if args.no_history else args.history, history_messages=args.history_messages,
                       history_tokens=args.history_tokens, system=args.system, state=args.state,
                       stream=args.stream, output=args.output, result=args.result,
                       compare=_models(args.compare) if args.compare is not None else None,
                       variants=args.variants, checks=args.checks, over=args.over,
                       sweep=[parse_sweep(text) for text in args.sweep or []], concurrency=args.concurrency,
                       registered=registered)


def _check_history_flags(args: Any) -> None:
    if args.no_history and args.history is not None:
        raise UsageError("use either --history N or --no-history, not both")
    if args.no_history and (args.history_messages is not None or args.history_tokens is not None):
        raise UsageError("--no-history sends no history: drop --history-messages / --history-tokens")
    if args.history is not None and args.history_messages is not None:
        raise UsageError("use either --history N (runs) or --history-messages N (messages), not both")
    check_flag_count(args.history, "--history", 0, "runs")
    check_flag_count(args.history_messages, "--history-messages", 0, "messages")
    check_flag_count(args.history_tokens, "--history-tokens", 1, "tokens")


_ONE_RUN_ONLY = (("new", "--new"), ("state", "--state"), ("history", "--history"),
                 ("history_messages", "--history-messages"), ("history_tokens", "--history-tokens"),
                 ("stream", "--stream/--no-stream"), ("result", "--result"))


def _check_modes(args: Any) -> None:
    """Flags of one run do not mix with many runs, and each many-runs flag needs its mode."""
    comparing = next((flag for flag, value in (("--compare", args.compare), ("--variants", args.variants),
                                               ("--sweep", args.sweep)) if value), None)
    if args.over is not None and comparing:
        raise UsageError(f"use either --over VAR (a template over rows) or {comparing}, not both")
    mode = "--over" if args.over is not None else comparing
    if mode is None:
        for flag, value in (("--checks", args.checks), ("--concurrency", args.concurrency)):
            if value is not None:
                raise UsageError(f"{flag} needs --compare, --variants, --sweep or --over: it is for many runs")
        return
    used = [flag for attr, flag in _ONE_RUN_ONLY if getattr(args, attr) not in (None, False)]
    if mode == "--over" and args.no_history:
        used.append("--no-history")  # rows never see history
    if used:
        raise UsageError(f"{used[0]} does not apply to {mode}")
    if mode != "--over" and args.system is not None:
        raise UsageError(f"{mode} takes system prompts from --variants VAR (a dict name -> system prompt), "
                         "not --system")
    if args.compare is not None and args.model is not None:
        raise UsageError("use either -m MODEL or --compare MODELS, not both")


_NOT_FOR_REGISTERED = (("compare", "--compare"), ("variants", "--variants"), ("sweep", "--sweep"),
                       ("over", "--over"), ("checks", "--checks"), ("concurrency", "--concurrency"),
                       ("model", "-m"), ("system", "--system"))
_NOT_FOR_WORKFLOW = (("history", "--history"), ("no_history", "--no-history"),
                     ("history_messages", "--history-messages"), ("history_tokens", "--history-tokens"),
                     ("stream", "--stream/--no-stream"))
_WHY_NOT = {"-m": "it runs on its own models", "--system": "it keeps its own instructions"}


def _check_registered(args: Any) -> tuple[str, str] | None:
    """``--team/--workflow/--agent NAME``: one of them, without the flags that belong to the notebook's model."""
    chosen = [(kind, getattr(args, kind)) for kind in ("team", "workflow", "agent") if getattr(args, kind) is not None]
    if not chosen:
        return None
    if len(chosen) > 1:
        raise UsageError(f"use one of --{chosen[0][0]} and --{chosen[1][0]}, not both")
    kind, name = chosen[0]
    for attr, flag in _NOT_FOR_REGISTERED:
        if getattr(args, attr) not in (None, []):
            raise UsageError(f"{flag} does not apply to --{kind} {name}: {_WHY_NOT.get(flag, 'it is one run')}")
    for attr, flag in _NOT_FOR_WORKFLOW if kind == "workflow" else ():
        if getattr(args, attr) not in (None, False) or (attr == "stream" and args.stream is not None):
            raise UsageError(f"{flag} does not apply to --workflow {name}: a workflow keeps its own run-based "
                             "history and shows its steps when it is done")
    return kind, name


def _models(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise UsageError(f"--compare takes model names separated by commas, such as gpt-5.2,gpt-5-mini; "
                         f"not {text!r}")
    return names


def _setting_value(text: str) -> Any:
    """``0.7`` → 0.7, ``true`` → True, ``"x"`` → x; anything else stays the text it is."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``temperature=0,0.7`` → ``("temperature", [0, 0.7])``: one axis of a settings grid."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier() or not values.strip():
        raise UsageError(f"--sweep takes KEY=V1,V2 such as temperature=0,0.7; not {text!r}")
    items = [v.strip() for v in values.split(",")]
    if not all(items):
        raise UsageError(f"--sweep {key}: an empty value in {values!r}")
    return key, [_setting_value(v) for v in items]


def warm_up(magics: AgentMagics) -> None:
    """Import the ``openai`` SDK, its HTTP transport and the API's resource module (together ~1 s), and build the
    Markdown renderer: what the first ``%%agent`` cell needs beyond the extension itself, done while the user
    writes that cell. The API is chosen as a model would choose it, from the settings at the time the SDK has
    loaded. A failure here is left for the cell to report in its own words."""
    with contextlib.suppress(Exception):
        import openai

        chat = magics.api == "chat" or (magics.api == "auto" and not is_openai_endpoint(
            magics.base_url or os.environ.get("OPENAI_BASE_URL")))
        client = openai.OpenAI(api_key="nbsessions-warm-up", base_url="http://127.0.0.1:9/v1", max_retries=0)
        try:  # building a client sends nothing; the SDK loads a resource on first access
            _ = client.chat.completions if chat else client.responses
        finally:
            client.close()
    with contextlib.suppress(Exception):
        from nbsessions.presentation.render import markdown_to_html

        markdown_to_html("")


def load_ipython_extension(ip: Any) -> AgentMagics:
    """Register ``AgentMagics`` and the cell-id hooks on ``ip``, then warm up the first cell in the background."""
    magics = AgentMagics(shell=ip)
    ip.register_magics(magics)
    ip.events.register("pre_run_cell", magics.pre_run_cell)
    ip.events.register("post_run_cell", magics.post_run_cell)
    magics.warming = threading.Thread(target=warm_up, args=(magics,), name="nbsessions-warm-up", daemon=True)
    magics.warming.start()
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
