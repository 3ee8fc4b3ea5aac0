"""Model providers behind one contract (``Model.stream``)."""

from nbsessions.llm.base import Model, Usage
from nbsessions.llm.offline import FunctionModel, OfflineModel

__all__ = ["FunctionModel", "Model", "OfflineModel", "Usage"]
