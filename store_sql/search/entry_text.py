"""The searchable text of a transcript entry: what the full-text index holds for it."""

from __future__ import annotations

from typing import Any

from store_sql.schema.extra_sql import SEARCH_TEXT_CHARS


def _blocks_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind == "toolCall" and isinstance(block.get("name"), str):
            parts.append(block["name"])
    return "\n".join(parts)


def entry_search_text(value: Any) -> str | None:
    """Text a person would search for in an entry, or None when it has none.

    Messages give their text blocks (and tool names), bash executions their command and
    output, compactions and branch summaries their summary, custom messages their content;
    its first `SEARCH_TEXT_CHARS` characters."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    text = ""
    if kind == "message":
        message = value.get("message")
        if isinstance(message, dict):
            if message.get("role") == "bashExecution":
                text = "\n".join(
                    s for s in (message.get("command"), message.get("output")) if isinstance(s, str)
                )
            else:
                text = _blocks_text(message.get("content"))
    elif kind in ("compaction", "branch_summary"):
        summary = value.get("summary")
        text = summary if isinstance(summary, str) else ""
    elif kind == "custom_message":
        text = _blocks_text(value.get("content"))
    elif kind == "session_info" or kind == "label":
        name = value.get("name", value.get("label"))
        text = name if isinstance(name, str) else ""
    return text[:SEARCH_TEXT_CHARS] or None
