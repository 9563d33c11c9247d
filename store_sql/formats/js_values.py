"""How JavaScript reads two kinds of strings the gateway relies on: `String.prototype.trim`
and `new Date(text).getTime()`.

Python's `str.strip()` removes a different set of characters (it strips U+001C..U+001F and
U+0085, which JavaScript keeps, and keeps U+FEFF, which JavaScript strips), so a name pi
trims must be trimmed with `js_trim` to give pi's bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["epoch_ms", "js_trim"]

# ECMAScript WhiteSpace (TAB, VT, FF, ZWNBSP and the Zs category) and LineTerminator.
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(text: str) -> str:
    """`text.trim()` as JavaScript does it."""
    return text.strip(_JS_WHITESPACE)


def epoch_ms(timestamp: Any) -> int | None:
    """`new Date(timestamp).getTime()` for the ISO-8601 strings entries carry; None where
    JavaScript gives NaN (JSON.stringify writes NaN as null). A time without a zone also
    gives None: JavaScript reads it in the machine's local time, which the store cannot know."""
    if not isinstance(timestamp, str):
        return None
    try:
        parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(parsed.timestamp() * 1000 + 0.5) if parsed.tzinfo else None
