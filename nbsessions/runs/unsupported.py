"""Agno's Agent options that nbsessions cannot honour, refused by name instead of silently ignored.

An Agno example that passes ``knowledge=`` or ``output_schema=`` would otherwise run and quietly behave
differently; one clear line saying which option is missing is better than Python's generic error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UNSUPPORTED = frozenset({
    "knowledge", "knowledge_filters", "add_knowledge_to_context", "search_knowledge", "knowledge_retriever",
    "memory_manager", "enable_agentic_memory", "enable_user_memories", "update_memory_on_run",
    "add_memories_to_context", "reasoning", "reasoning_model", "reasoning_agent", "output_schema",
    "input_schema", "parser_model", "output_model", "structured_outputs", "use_json_mode", "pre_hooks",
    "post_hooks", "tool_hooks", "guardrails", "learning", "skills", "compress_tool_results",
    "add_location_to_context", "dependencies", "add_dependencies_to_context",
})


def refuse_unsupported(owner: str, given: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` naming the first unknown keyword; Agno's unsupported ones say so plainly."""
    for name in given:
        if name in UNSUPPORTED:
            raise TypeError(f"{owner}({name}=...) is Agno's, but nbsessions does not support it: remove it")
        raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {name!r}")
