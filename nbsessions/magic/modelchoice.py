"""Which model a notebook cell uses, and model objects from names.

``-m`` > ``%config AgentMagics.model`` > ``$NBSESSIONS_MODEL`` > ``gpt-5.2`` when ``OPENAI_API_KEY`` is set >
the offline model, announced once. Names become ``Model`` objects on the configured endpoint and API, cached;
``register_model`` makes any ``Model`` object usable by name.
"""

from __future__ import annotations

import os
import re

from IPython.core.error import UsageError

from nbsessions.errors import NbSessionsError
from nbsessions.llm.base import Model
from nbsessions.magic.cellopts import Settings

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

    def model_choice(self, flag: str | None = None) -> tuple[str, str]:
        """The model name and where it came from: ``-m`` > ``%config`` > ``NBSESSIONS_MODEL`` > key > offline."""
        if flag:
            return flag, "-m"
        if self.settings.model:
            return self.settings.model, "%config AgentMagics.model"
        if os.environ.get("NBSESSIONS_MODEL"):
            return os.environ["NBSESSIONS_MODEL"], "NBSESSIONS_MODEL"
        if self.settings.base_url:
            raise UsageError("AgentMagics.base_url is set but no model is named: use -m MODEL or "
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
        if not _MODEL_ID.fullmatch(name):
            raise UsageError(f"unknown model id {name!r}: use a model name such as 'gpt-5.2', 'llama3.2' "
                             "or 'offline'")
        api = self.settings.api
        key = (name, self.settings.base_url, api)
        if key not in self._models:
            from nbsessions.llm.resolve import model_from_name

            try:
                model = model_from_name(name, base_url=self.settings.base_url or None,
                                        api=None if api == "auto" else api)
            except (ValueError, NbSessionsError) as exc:
                raise UsageError(str(exc)) from None
            self._check_listed(name, model)
            self._models[key] = model
        return self._models[key]

    def _check_listed(self, name: str, model: Model) -> None:
        """Refuse a model the server does not list — asked once per server, skipped when it keeps no list."""
        lister = getattr(model, "available_models", None)
        if lister is None:
            return
        endpoint = getattr(model, "endpoint", "")
        if endpoint not in self._listed:
            self._listed[endpoint] = lister()
        listed = self._listed[endpoint]
        if listed and name not in listed:
            shown = ", ".join(sorted(listed)[:8]) + (", …" if len(listed) > 8 else "")
            raise UsageError(f"unknown model id {name!r}: {getattr(model, 'host', endpoint)} offers {shown}")

    def announce(self, source: str) -> None:
        """Say once per kernel that replies are offline, and how to change that."""
        if source == "fallback" and not self._offline_announced:
            self._offline_announced = True
            print(OFFLINE_NOTICE)

    def chosen_model(self, flag: str | None = None) -> Model:
        """The model object for ``-m`` (or the notebook's choice), with the offline notice when it applies."""
        name, source = self.model_choice(flag)
        model = self.model(name)
        self.announce(source)
        return model
