"""Which model a notebook cell uses, and model objects from names.

``-m`` > ``%config AgentMagics.model`` > ``$NBSESSIONS_MODEL`` > the one model a custom ``base_url`` lists >
``gpt-5.2`` when ``OPENAI_API_KEY`` is set > the offline model, announced once. Names become ``Model`` objects on
the configured endpoint, API and key variable, cached; ``register_model`` makes any ``Model`` usable by name.
Any id the server itself lists is accepted as it is (llama.cpp's file paths, Ollama's ``llama3.2:1b`` tags).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from IPython.core.error import UsageError

from nbsessions.llm.base import Model
from nbsessions.llm.resolve import model_from_name
from nbsessions.magic.cellopts import Settings
from nbsessions.records.errors import NbSessionsError


def _host(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2] or url

DEFAULT_OPENAI_MODEL = "gpt-5.2"
OFFLINE = "offline"
_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.:/@+-]*")
OFFLINE_NOTICE = ("nbsessions: using the offline model (no model set, no OPENAI_API_KEY). For a real one set "
                  "OPENAI_API_KEY, or %config AgentMagics.base_url and AgentMagics.model for a local server.")


class ModelChoice:
    """The model half of ``NotebookAgent``: resolution order, name → model cache, the offline notice."""

    settings: Settings

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], Model] = {}
        self._named: dict[str, Model] = {}
        self._listed: dict[str, list[str] | None] = {}  # endpoint → the model ids it lists (None: no list)
        self._offline_announced = False
        self._announced_sources: set[str] = set()

    def model_choice(self, flag: str | None = None) -> tuple[str, str]:
        """The model name and where it came from: ``-m`` > ``%config`` > ``NBSESSIONS_MODEL`` > key > offline."""
        if flag:
            return flag, "-m"
        if self.settings.model:
            return self.settings.model, "%config AgentMagics.model"
        if os.environ.get("NBSESSIONS_MODEL"):
            return os.environ["NBSESSIONS_MODEL"], "NBSESSIONS_MODEL"
        server = self.settings.base_url or os.environ.get("OPENAI_BASE_URL") or ""
        if server and _host(server).lower() != "api.openai.com":
            listed = self._listing(self._build("default"))
            if listed is not None and len(listed) == 1:
                return listed[0], f"{listed[0]}, the only model {_host(server)} lists"
            if self.settings.base_url:
                offers = f" ({_host(server)} lists {len(listed)})" if listed else ""
                raise UsageError(f"AgentMagics.base_url is set but no model is named{offers}: use -m MODEL or "
                                 "%config AgentMagics.model = '<model>'")
        if os.environ.get("OPENAI_API_KEY"):
            return DEFAULT_OPENAI_MODEL, "OPENAI_API_KEY is set"
        return OFFLINE, "fallback"

    def register_model(self, name: str, model: Model) -> None:
        """Make a ``Model`` object (a ``FunctionModel``, a configured ``OpenAIChat``…) usable as ``-m name``."""
        self._named[name] = model

    def model(self, name: str) -> Model:
        """A model object for ``name`` (cached per name, base_url and API); bad names are a ``UsageError``."""
        name = name.strip()
        if name in self._named:
            return self._named[name]
        key = (name, self.settings.base_url, self.settings.api, self.settings.api_key_env)
        if key not in self._models:
            model = self._build(name)
            self._check_listed(name, model)
            self._models[key] = model
        return self._models[key]

    def _build(self, name: str) -> Model:
        api = self.settings.api
        try:
            return model_from_name(name, base_url=self.settings.base_url or None, api=None if api == "auto" else api,
                                   api_key_env=self.settings.api_key_env or None)
        except (ValueError, NbSessionsError) as exc:
            raise UsageError(str(exc)) from None

    def _listing(self, model: Model) -> list[str] | None:
        """The ids the model's server lists, asked once per server (None: it keeps no list, or cannot say)."""
        if not model.lists_models:
            return None
        endpoint = getattr(model, "endpoint", "")
        if endpoint not in self._listed:
            self._listed[endpoint] = model.available_models()
        return self._listed[endpoint]

    def _check_listed(self, name: str, model: Model) -> None:
        """Accept what the server lists; refuse what it does not list, or a malformed id on OpenAI's own API."""
        if name == OFFLINE:
            return
        well_formed = bool(_MODEL_ID.fullmatch(name))
        if not well_formed and not model.is_local:  # never ask api.openai.com about a typo like 'gpt 5'
            raise UsageError(f"unknown model id {name!r}: use a model name such as 'gpt-5.2', 'llama3.2' "
                             "or 'offline'")
        listed = self._listing(model)
        if listed is not None and name in listed:
            return
        if listed:
            shown = ", ".join(sorted(listed)[:8]) + (", …" if len(listed) > 8 else "")
            raise UsageError(f"unknown model id {name!r}: {getattr(model, 'host', '')} offers {shown}")
        if not well_formed:
            raise UsageError(f"unknown model id {name!r}: use a model name such as 'gpt-5.2', 'llama3.2' "
                             "or 'offline'")

    def server_line(self) -> str:
        """Where cells' requests go and which variable the key comes from (whether it is set, never its value)."""
        url = self.settings.base_url or os.environ.get("OPENAI_BASE_URL") or ""
        where = urlsplit(url)._replace(netloc=_host(url)).geturl() if url else "OpenAI (api.openai.com)"
        variable = self.settings.api_key_env or "OPENAI_API_KEY"
        return f"{where} · key from ${variable} ({'set' if os.environ.get(variable) else 'not set'})"

    def announce(self, source: str) -> None:
        """Say once per kernel that replies are offline (and how to change that), or which model was picked."""
        if source == "fallback" and not self._offline_announced:
            self._offline_announced = True
            print(OFFLINE_NOTICE)
        elif ", the only model " in source and source not in self._announced_sources:
            self._announced_sources.add(source)
            print(f"nbsessions: no model named; using {source}.")

    def chosen_model(self, flag: str | None = None) -> Model:
        """The model object for ``-m`` (or the notebook's choice), with the offline notice when it applies."""
        name, source = self.model_choice(flag)
        model = self.model(name)
        self.announce(source)
        return model
