"""Model providers behind one contract (``Model.stream``)."""

from nbsessions.llm.base import Model, Usage
from nbsessions.llm.offline import FunctionModel, OfflineModel
from nbsessions.llm.openai import OpenAIChat, OpenAIResponses
from nbsessions.llm.resolve import model_from_name

__all__ = ["FunctionModel", "Model", "OfflineModel", "OpenAIChat", "OpenAIResponses", "Usage", "model_from_name"]
