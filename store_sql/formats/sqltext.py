"""Which Python strings SQLite can store as TEXT.

JSON (and JavaScript) allow lone surrogates such as "\\ud800"; Python keeps them in a str,
but sqlite3 must encode TEXT as UTF-8 and refuses them (UnicodeEncodeError). The line or
entry that holds one is always kept verbatim (its JSON text escapes it); only the columns
extracted for indexing leave such a value out (NULL), and a session key, which must be
stored, is refused with a clear error.
"""

from __future__ import annotations

import re

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: str) -> bool:
    """True when `value` can be bound to SQLite as TEXT."""
    return value.isascii() or _LONE_SURROGATE.search(value) is None


def text_or_none(value: object) -> str | None:
    """`value` when it is a str SQLite can store, else None (for extracted columns)."""
    return value if isinstance(value, str) and storable(value) else None


def storable_text(value: str) -> str:
    """`value` with lone surrogates replaced by U+FFFD: for copies of text (the full-text
    index) where losing one code point beats losing the whole text."""
    return value if storable(value) else _LONE_SURROGATE.sub("\ufffd", value)
