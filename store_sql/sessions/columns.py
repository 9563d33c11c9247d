"""The columns of session_entries extracted from an entry's JSON (docs/SCHEMA.md).

The entry text is the source of truth; these columns are copies of a few of its fields so
that listing, filtering and the maintainer views need no JSON parse. They are recomputed on
every change of an entry (`sessions/rows.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store_sql.formats.sqltext import storable, text_or_none

# (column, entry field, kind): "s" a string SQLite can store, "n" a number (not a bool).
# Table-driven because this runs on every change of an entry: measured 3x faster than
# calling a helper per field.
_EXTRACTED: tuple[tuple[str, str, str], ...] = (
    ("session_id", "sessionId", "s"),
    ("updated_at", "updatedAt", "n"),
    ("session_started_at", "sessionStartedAt", "n"),
    ("last_interaction_at", "lastInteractionAt", "n"),
    ("chat_type", "chatType", "s"),
    ("channel", "channel", "s"),
    ("label", "label", "s"),
    ("display_name", "displayName", "s"),
    ("model_provider", "modelProvider", "s"),
    ("model", "model", "s"),
    ("status", "status", "s"),
    ("archived_at", "archivedAt", "n"),
    ("session_file", "sessionFile", "s"),
    ("spawned_by", "spawnedBy", "s"),
    ("input_tokens", "inputTokens", "n"),
    ("output_tokens", "outputTokens", "n"),
    ("total_tokens", "totalTokens", "n"),
    ("context_tokens", "contextTokens", "n"),
    ("compaction_count", "compactionCount", "n"),
)
_str = text_or_none
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _column_value(x: Any, kind: str) -> Any:
    cls = x.__class__
    if kind == "s":
        return x if cls is str and (x.isascii() or storable(x)) else None
    if cls is float:
        return x
    if cls is int:  # a bigger int cannot be bound to a statement; the entry text keeps it
        return x if _INT64_MIN <= x <= _INT64_MAX else None
    return x if isinstance(x, float) or (isinstance(x, int) and cls is not bool) else None


def _text_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def entry_columns(value: Any, text: str) -> dict[str, Any]:
    """The indexed columns of an entry (all NULL for an entry that is not an object).

    `channel` falls back to `deliveryContext.channel`; strings SQLite cannot store (lone
    surrogates) and numbers that are booleans are left out."""
    get = value.get if isinstance(value, dict) else {}.get
    columns = {column: _column_value(get(field), kind) for column, field, kind in _EXTRACTED}
    if columns["channel"] is None:
        delivery = get("deliveryContext")
        if isinstance(delivery, dict):
            columns["channel"] = _str(delivery.get("channel"))
    columns["entry_bytes"] = _text_bytes(text)
    return columns


COLUMN_NAMES = tuple(entry_columns({}, "").keys())
"""session_entries columns filled by `entry_columns`, in its order."""

NUMBER_COLUMNS = frozenset(column for column, _, kind in _EXTRACTED if kind == "n")
"""The columns holding a number of the entry (an int or a float, as the entry has it)."""


def patched_columns(patch: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The columns a patch of top-level fields can change, for an entry whose new text is
    `text` (its size always changes with it). Not for patches of `channel` or
    `deliveryContext`, whose column depends on both fields."""
    changed = {
        column: _column_value(patch[field], kind)
        for column, field, kind in _EXTRACTED
        if field in patch
    }
    changed["entry_bytes"] = _text_bytes(text)
    return changed
