"""Patching an entry's text in place equals parsing, merging and serialising it again."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from store_sql.formats.entry_patch import patch_entry_text
from store_sql.formats.jsjson import loads
from store_sql.formats.sessions_json import entry_text
from store_sql.sessions.rows import apply_patch

keys = st.one_of(
    st.sampled_from(["sessionId", "updatedAt", "label", "model", "a", "b", "7", "__proto__"]),
    st.text(max_size=8),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
entries = st.dictionaries(keys, values.filter(lambda v: v is not None), max_size=8)
patches = st.dictionaries(keys, values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(entries, patches)
def test_in_place_equals_parse_merge_serialise(
    entry: dict[str, Any], patch: dict[str, Any]
) -> None:
    text = entry_text(entry)
    patched = patch_entry_text(text, patch)
    if patched is None:
        return  # declined: the store takes the full path
    assert patched == entry_text(apply_patch(loads(text), patch))


def test_new_fields_go_last_and_none_removes() -> None:
    text = entry_text({"sessionId": "s", "updatedAt": 1, "label": "x"})
    patched = patch_entry_text(text, {"updatedAt": 2, "label": None, "model": {"id": [1, 2]}})
    assert patched == entry_text({"sessionId": "s", "updatedAt": 2, "model": {"id": [1, 2]}})


def test_declines_what_it_cannot_do_exactly() -> None:
    text = entry_text({"sessionId": "s", "updatedAt": 1})
    assert patch_entry_text(text, {"12": True}) is None  # JavaScript would list it first
    assert patch_entry_text('{"sessionId":"s","updatedAt":1}', {"label": "x"}) is None
    assert patch_entry_text(text, {"bad": {1, 2}}) is None  # the full path names the problem


def test_removing_every_field_leaves_an_empty_object() -> None:
    text = entry_text({"a": 1})
    assert patch_entry_text(text, {"a": None}) == "{}"
