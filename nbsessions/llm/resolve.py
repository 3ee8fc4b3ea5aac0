"""Turn a model name (from ``-m``, ``%config``, an env var or an experiment's model list) into a ``Model``.

The one resolver: the magic adds its cache and the server's model list on top, experiments pass the agent's
model as ``like`` so a bare name runs on the same endpoint.
"""

from __future__ import annotations

import copy
import os

from nbsessions.llm.base import Model
from nbsessions.llm.offline import OfflineModel
from nbsessions.llm.openai import OpenAIChat, OpenAIResponses, is_openai_endpoint

APIS = ("chat", "responses")


def model_from_name(name: str, *, base_url: str | None = None, api_key: str | None = None,
                    api: str | None = None, api_key_env: str | None = None, like: Model | None = None) -> Model:
    """``"offline"`` is the offline model; any other name is an OpenAI(-compatible) model.

    With ``like`` an OpenAI(-compatible) model, the name is served by a copy of it: same endpoint, API, key and
    settings (an experiment's bare model names run where the agent's model runs). Otherwise the API is ``api``
    when given; a custom server (``base_url`` or ``OPENAI_BASE_URL`` not on api.openai.com) gets Chat
    Completions, the API every compatible server speaks, and OpenAI itself gets the Responses API.
    """
    name = name.strip()
    if not name:
        raise ValueError("model name is empty: give a model id such as 'gpt-5.2', or 'offline'")
    if api is not None and api not in APIS:
        raise ValueError(f"api must be 'chat' or 'responses', not {api!r}")
    if name == "offline":
        return OfflineModel()
    if isinstance(like, (OpenAIChat, OpenAIResponses)):
        clone = copy.copy(like)  # OpenAI models copy without their live client
        clone.id = name
        return clone
    if api is None:
        api = "responses" if is_openai_endpoint(base_url or os.environ.get("OPENAI_BASE_URL")) else "chat"
    cls = OpenAIChat if api == "chat" else OpenAIResponses
    return cls(name, base_url=base_url, api_key=api_key, api_key_env=api_key_env)


def model_for(model_id: str | None, provider: str | None, origin: dict[str, str] | None, current: Model) -> Model:
    """The model that made a stored run, to continue or regenerate it on: ``current`` when it is that model,
    else one rebuilt from the run's record (id, API, endpoint, key variable; the key comes from the environment
    as it did). A function model is code, not a record: ``current`` stands in for it, as for old runs."""
    if model_id is None or (current.id == model_id and current.provider == provider
                            and (origin is None or current.origin() == origin)):
        return current
    if provider == OfflineModel.provider:
        return OfflineModel()
    if provider == "openai" and origin:
        return model_from_name(model_id, base_url=origin.get("base_url") or None, api=origin.get("api"),
                               api_key_env=origin.get("api_key_env"))
    return current
