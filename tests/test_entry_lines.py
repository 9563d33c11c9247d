"""Entry templates (store_sql.transcripts.entry_lines): a line joined around its tree fields equals
JSON.stringify of the whole entry, as jsjson writes it (jsjson itself is checked against
Node in test_jsjson.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_jsjson import json_values, keys, texts

from store_sql.errors import InvalidEntryError
from store_sql.formats import jsjson
from store_sql.transcripts.entry_lines import entry_object, prepare_entry

_TYPES = st.one_of(
    st.sampled_from(["message", "custom", "custom_message", "label", "model_change"]), texts
).filter(bool)
_IDS = st.one_of(st.sampled_from(["a1b2c3d4", "0" * 8]), st.uuids().map(str), texts)
_STAMPS = st.one_of(
    st.none(),
    st.just("2026-02-02T02:40:00.000Z"),
    texts,
    st.integers(),  # not a string: the writer's clock is used, as pi would
)
_NOW = "2026-12-03T11:39:28.123Z"


def _reference(fields: dict[str, Any], entry_id: str, parent_id: str | None) -> bytes:
    stamp = fields.get("timestamp")
    return jsjson.dumps_bytes(
        entry_object(fields, entry_id, parent_id, stamp if type(stamp) is str else _NOW)
    )


@settings(max_examples=300, deadline=None)
@given(
    kind=_TYPES,
    payload=st.dictionaries(
        keys.filter(lambda k: k not in ("id", "parentId", "type", "timestamp")),
        json_values,
        max_size=5,
    ),
    stamp=_STAMPS,
    entry_id=_IDS,
    parent_id=st.one_of(st.none(), _IDS),
)
def test_a_template_line_equals_the_whole_entry_written_at_once(
    kind: str, payload: dict[str, Any], stamp: object, entry_id: str, parent_id: str | None
) -> None:
    fields: dict[str, Any] = {"type": kind, **payload}
    if stamp is not None:
        fields["timestamp"] = stamp
    template = prepare_entry(fields)
    assert template.line(entry_id, parent_id, _NOW) == _reference(fields, entry_id, parent_id)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"type": "message", "message": {"role": "user", "content": "hi"}},
            b'{"type":"message","id":"a1b2c3d4","parentId":null,"timestamp":"' + _NOW.encode()
            + b'","message":{"role":"user","content":"hi"}}',
        ),
        (
            {"type": "custom", "customType": "x", "data": {"n": 1}},
            b'{"type":"custom","customType":"x","data":{"n":1},"id":"a1b2c3d4",'
            b'"parentId":null,"timestamp":"' + _NOW.encode() + b'"}',
        ),
        (
            {"type": "session_info"},
            b'{"type":"session_info","id":"a1b2c3d4","parentId":null,"timestamp":"'
            + _NOW.encode() + b'"}',
        ),
        (  # an array-index key goes before "type", as JavaScript orders it
            {"type": "custom", "7": True},
            b'{"7":true,"type":"custom","id":"a1b2c3d4","parentId":null,"timestamp":"'
            + _NOW.encode() + b'"}',
        ),
    ],
)  # fmt: skip
def test_lines_come_out_in_pis_field_order(fields: dict[str, Any], expected: bytes) -> None:
    assert prepare_entry(fields).line("a1b2c3d4", None, _NOW) == expected


def test_a_template_carries_the_indexed_columns() -> None:
    template = prepare_entry(
        {
            "type": "message",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "message": {"role": "assistant", "idempotencyKey": "k-1", "content": []},
        }
    )
    assert (template.type, template.role, template.key, template.timestamp) == (
        "message",
        "assistant",
        "k-1",
        "2026-01-01T00:00:00.000Z",
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (["not", "an", "object"], "must be a JSON object"),
        ({"message": {}}, "non-empty string 'type'"),
        ({"type": ""}, "non-empty string 'type'"),
        ({"type": "custom", "id": "x"}, "their 'id' from the store"),
        ({"type": "custom", "parentId": None}, "their 'parentId' from the store"),
    ],
)
def test_bad_entries_are_refused_before_they_reach_the_writer(fields: Any, reason: str) -> None:
    with pytest.raises(InvalidEntryError, match=reason):
        prepare_entry(fields)


def test_a_value_json_cannot_hold_is_refused_on_the_callers_side() -> None:
    with pytest.raises((TypeError, ValueError)):
        prepare_entry({"type": "custom", "data": {1, 2}})
