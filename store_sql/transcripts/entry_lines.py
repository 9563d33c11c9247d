"""An appended entry's JSON line, written before the writer knows where the entry goes.

pi writes an entry as `JSON.stringify({type, id, parentId, timestamp, ...payload})`
(`custom` and `custom_message` entries put their payload before the tree fields). Of those,
only `id` and `parentId` depend on where the entry lands in the tree, which only the writer
knows once it holds the transcript's leaf. So `prepare_entry` runs on the caller's side
(the event loop), checks the entry and serialises everything else into the bytes before
and after the tree fields; the writer's thread then only joins them around the ids
(`EntryTemplate.line`). Serialising on the writer's thread was most of an append's Python
work there, and the writer is the one thread every append waits for (tools/bench
concurrent appends).

`line()` equals `jsjson.dumps_bytes` of the whole entry object, byte for byte: a property
test checks it (tests/test_entry_lines.py), and Node checks jsjson.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store_sql.errors import InvalidEntryError
from store_sql.formats import jsjson
from store_sql.formats.sqltext import storable, text_or_none

# pi writes `custom` and `custom_message` entries with their payload before the tree fields
# (SessionManager.appendCustomEntry / appendCustomMessageEntry); every other type after them.
_PAYLOAD_FIRST = frozenset({"custom", "custom_message"})
_TREE_FIELDS = ("type", "timestamp")  # taken out of the payload; id and parentId are refused
_DIGITS = frozenset("0123456789")
# `{"type":"<kind>",` of the types the gateway writes (all plain ASCII, nothing to escape).
_HEADS = {
    kind: b'{"type":"' + kind.encode() + b'",'
    for kind in (
        "message", "model_change", "thinking_level_change", "compaction", "branch_summary",
        "custom", "custom_message", "label", "session_info",
    )
}  # fmt: skip


class EntryTemplate:
    """An entry to append, serialised except for its `id` and `parentId`.

    (A plain class rather than a frozen dataclass: one is made per appended entry, and a
    frozen dataclass's __init__ costs several times as much.)"""

    __slots__ = ("head", "key", "role", "tail", "timestamp", "timestamp_json", "type")

    def __init__(
        self,
        type_: str | None,
        role: str | None,
        key: str | None,
        timestamp: str | None,
        head: bytes,
        tail: bytes,
        timestamp_json: bytes | None,
    ) -> None:
        self.type = type_
        """The `type` column (None when it cannot be stored as TEXT)."""
        self.role = role
        """`message.role` of a message entry."""
        self.key = key
        """`message.idempotencyKey` of a message entry."""
        self.timestamp = timestamp
        """The `timestamp` column when the entry brought its own string timestamp."""
        self.head = head
        """The line up to the tree fields: `{"type":...,` (and the payload, for custom types)."""
        self.tail = tail
        """The line after the timestamp: the payload and `}` (just `}` for custom types)."""
        self.timestamp_json = timestamp_json
        """The entry's own timestamp as JSON text; None: the writer's clock is used."""

    def line(self, entry_id: str, parent_id: str | None, timestamp: str) -> bytes:
        """The entry's line with its tree fields; `timestamp` is used when the entry brought
        none (it must be an ISO time from `transcripts.now_iso`, which needs no escaping)."""
        stamp = self.timestamp_json
        if stamp is None:
            stamp = b'"' + timestamp.encode() + b'"'
        return b"".join(
            (
                self.head,
                b'"id":',
                _json_string(entry_id),
                b',"parentId":',
                b"null" if parent_id is None else _json_string(parent_id),
                b',"timestamp":',
                stamp,
                self.tail,
            )
        )


def prepare_entry(fields: object) -> EntryTemplate:
    """Check one entry given to an append and serialise all but its tree fields.

    Raises InvalidEntryError for what the store refuses (not an object, no string `type`, an
    `id` or `parentId` of its own); jsjson's TypeError or ValueError for a value
    JSON.stringify could not write."""
    if type(fields) is not dict and not isinstance(fields, Mapping):
        raise InvalidEntryError(f"an entry must be a JSON object, got {type(fields).__name__}")
    kind = fields.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidEntryError(f"an entry needs a non-empty string 'type', got {kind!r}")
    if "id" in fields or "parentId" in fields:
        reserved = "id" if "id" in fields else "parentId"
        raise InvalidEntryError(
            f"entries get their {reserved!r} from the store; remove it from the entry"
        )
    # This runs on the event loop for every append (about a third of an append's time
    # there, tools/bench concurrent appends), hence the copies and lookups done once.
    payload = dict(fields)
    del payload["type"]
    stamp = payload.pop("timestamp", None)
    explicit = stamp if type(stamp) is str else None
    out = jsjson.dumps_bytes(payload)  # `{...}`: the payload's members inside the braces
    head = _HEADS.get(kind) or b'{"type":' + _json_string(kind) + b","
    if kind in _PAYLOAD_FIRST:
        if len(out) > 2:
            head += out[1:-1] + b","
        tail = b"}"
    else:
        tail = b"," + out[1:] if len(out) > 2 else b"}"
    message = payload.get("message")
    role = key = None
    if type(message) is dict:
        role = text_or_none(message.get("role"))
        if kind == "message":
            key = _idempotency_key(message)
    elif kind == "message" and isinstance(message, Mapping):
        key = _idempotency_key(message)
    template = EntryTemplate(
        text_or_none(kind),
        role,
        key,
        text_or_none(explicit),
        head,
        tail,
        None if explicit is None else _json_string(explicit),
    )
    for name in payload:
        if type(name) is str and name[:1] in _DIGITS and jsjson.is_array_index(name):
            # JavaScript writes array-index keys before every other key, "type" included,
            # so this line cannot be cut around the tree fields: it is written whole.
            return _WholeEntry(template, dict(fields), explicit)
    return template


def _idempotency_key(message: Mapping[str, Any]) -> str | None:
    """`message.idempotencyKey`, which must be text SQLite can store and compare: a key
    that is not (a number, an object, a lone surrogate) could never de-duplicate a retry."""
    key = message.get("idempotencyKey")
    if key is None or (type(key) is str and (key.isascii() or storable(key))):
        return key
    raise InvalidEntryError(
        f"message.idempotencyKey must be a string of well-formed Unicode, got {key!r}: "
        "a key the store cannot compare would never de-duplicate a retry"
    )


def entry_object(
    fields: Mapping[str, Any], entry_id: str, parent_id: str | None, timestamp: str
) -> dict[str, Any]:
    """The whole entry as pi builds it, in pi's field order (the reference `line()` equals)."""
    kind = fields["type"]
    payload = {k: v for k, v in fields.items() if k not in _TREE_FIELDS}
    tree = {"id": entry_id, "parentId": parent_id, "timestamp": timestamp}
    if kind in _PAYLOAD_FIRST:
        return {"type": kind, **payload, **tree}
    return {"type": kind, **tree, **payload}


class _WholeEntry(EntryTemplate):
    __slots__ = ("explicit", "fields")

    def __init__(self, base: EntryTemplate, fields: dict[str, Any], explicit: str | None) -> None:
        super().__init__(
            base.type, base.role, base.key, base.timestamp, b"", b"", base.timestamp_json
        )
        self.fields = fields
        self.explicit = explicit

    def line(self, entry_id: str, parent_id: str | None, timestamp: str) -> bytes:
        stamp = self.explicit if self.explicit is not None else timestamp
        return jsjson.dumps_bytes(entry_object(self.fields, entry_id, parent_id, stamp))


def _json_string(text: str) -> bytes:
    # Ids the store draws (8 hex digits), entry types, ISO times and most stored ids need no
    # escaping: printable ASCII other than a quote or a backslash is written as it is.
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode() + b'"'
    return jsjson.dumps_bytes(text)
