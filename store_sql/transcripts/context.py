"""The model context of a transcript, exactly as pi's `buildSessionContext` builds it.

Walk the active path; the last `thinking_level_change` gives the thinking level, the last
`model_change` or assistant message the model; if the path holds a compaction, the last one
contributes its summary first, then the entries from `firstKeptEntryId` up to it, then
everything after it. `branch_summary` and `custom_message` entries become messages
(docs/FORMATS.md §3; pi-mono session-manager.ts and messages.ts).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from store_sql.formats.js_values import epoch_ms
from store_sql.transcripts.reads import StoredEntry, active_path, navigation


@dataclass(slots=True)
class SessionContext:
    """What the model sees: messages, thinking level and model."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    thinking_level: str = "off"
    model: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The shape pi returns: {messages, thinkingLevel, model}."""
        return {
            "messages": self.messages,
            "thinkingLevel": self.thinking_level,
            "model": self.model,
        }


_ABSENT: Any = object()


def _js_object(**fields: Any) -> dict[str, Any]:
    """`{a: entry.a, ...}` as JavaScript builds it: a field read from an absent property is
    `undefined`, which JSON.stringify leaves out (null stays null). Entries written by other
    code may lack fields pi's types require; the context must still be pi's, byte for byte."""
    return {name: value for name, value in fields.items() if value is not _ABSENT}


def _as_message(value: dict[str, Any]) -> dict[str, Any] | None:
    kind = value.get("type")
    if kind == "message":
        message = value.get("message")
        return message if isinstance(message, dict) else None
    if kind == "custom_message":
        return _js_object(
            role="custom",
            customType=value.get("customType", _ABSENT),
            content=value.get("content", _ABSENT),
            display=value.get("display", _ABSENT),
            details=value.get("details", _ABSENT),
            timestamp=epoch_ms(value.get("timestamp")),
        )
    if kind == "branch_summary" and value.get("summary"):
        return _js_object(
            role="branchSummary",
            summary=value.get("summary"),
            fromId=value.get("fromId", _ABSENT),
            timestamp=epoch_ms(value.get("timestamp")),
        )
    return None


def context_from_path(path: list[StoredEntry]) -> SessionContext:
    """pi's buildSessionContext over an already-walked path (root first)."""
    values: list[tuple[str | None, dict[str, Any]]] = []
    for entry in path:
        if entry.kind != "entry":
            continue
        value = entry.value()
        if isinstance(value, dict):
            values.append((entry.id, value))
    return context_from_values(values)


def context_from_values(values: list[tuple[str | None, dict[str, Any]]]) -> SessionContext:
    """pi's buildSessionContext over the (id, parsed entry) pairs of a path, root first.
    The messages it returns are the entries' own `message` objects."""
    ctx = SessionContext()
    compaction_index: int | None = None
    for index, (_id, value) in enumerate(values):
        kind = value.get("type")
        if kind == "thinking_level_change":
            ctx.thinking_level = value.get("thinkingLevel")  # type: ignore[assignment]
        elif kind == "model_change":
            ctx.model = _js_object(
                provider=value.get("provider", _ABSENT), modelId=value.get("modelId", _ABSENT)
            )
        elif kind == "message" and isinstance(value.get("message"), dict):
            message = value["message"]
            if message.get("role") == "assistant":
                ctx.model = _js_object(
                    provider=message.get("provider", _ABSENT),
                    modelId=message.get("model", _ABSENT),
                )
        elif kind == "compaction":
            compaction_index = index
    if compaction_index is None:
        ctx.messages = [m for _, v in values if (m := _as_message(v)) is not None]
        return ctx
    compaction = values[compaction_index][1]
    ctx.messages.append(
        _js_object(
            role="compactionSummary",
            summary=compaction.get("summary", _ABSENT),
            tokensBefore=compaction.get("tokensBefore", _ABSENT),
            timestamp=epoch_ms(compaction.get("timestamp")),
        )
    )
    first_kept = compaction.get("firstKeptEntryId")
    keeping = False
    for entry_id, value in values[:compaction_index]:
        if entry_id is not None and entry_id == first_kept:
            keeping = True
        if keeping and (message := _as_message(value)) is not None:
            ctx.messages.append(message)
    for _id, value in values[compaction_index + 1 :]:
        if (message := _as_message(value)) is not None:
            ctx.messages.append(message)
    return ctx


def build_context(
    conn: sqlite3.Connection, transcript_id: int, leaf_id: str | None = None
) -> SessionContext:
    """The model context at the leaf (or at `leaf_id`). A transcript following today's tree
    rules gives the entries those rules keep (docs/FORMATS.md §6)."""
    if leaf_id is None:
        navigated = navigation(conn, transcript_id)
        if navigated is not None:
            return context_from_path(navigated.context_entries())
    return context_from_path(active_path(conn, transcript_id, leaf_id))
