"""JavaScript-exact JSON: the one place store_sql turns values into JSON text and back.

Everything the store writes must be byte-identical to what the gateway's own
``JSON.stringify`` would write (docs/FORMATS.md section 4), and everything it reads
must be parsed the way ``JSON.parse`` reads it, without losing the spelling of numbers
that JavaScript would have re-spelled.

Writing lets orjson do the work wherever its bytes provably equal JavaScript's (the three
stages described in jsjson_write). Where they differ:

- orjson writes floats as ``2.0``, ``-0.0``, ``9e-6``, ``1e+16``; JavaScript writes ``2``,
  ``0``, ``0.000009``, ``10000000000000000``. orjson's fixed-notation range
  (1e-5 <= |x| < 1e16) lies inside JavaScript's (1e-6 <= |x| < 1e21) and both print the
  shortest round-trip digits, so only floats that orjson spells with ``e`` or ``.0`` differ.
- JavaScript lists array-index keys (``"0"``..``"4294967294"``) before all other keys.
- orjson refuses lone surrogates and ints beyond 64 bits; JavaScript escapes lone
  surrogates as ``\\udxxx``.
orjson's string escaping (short escapes for ``\\b\\f\\n\\r\\t``, lowercase ``\\u00xx`` for other
controls, everything else raw) equals JavaScript's; tests/test_jsjson.py checks every
code point against Node.

Measured (python 3.11, orjson 3.13, best of 40 runs on a shared, busy 2-core box, so the
ratios say more than the microseconds) on an 800-byte assistant message from the corpus:
orjson.dumps 0.84 us; dumps_bytes 3.9 us (dumps, a str, 4.7 us) when no float in it is one
orjson misspells; 13.5 us when usage.cost holds 0.000009 and 3.3e-8 (stage 2 in jsjson_write); 47 us
with a lone surrogate (stage 3 down the path to it); stdlib json.dumps, which is not
JavaScript-exact, 12.5 us. A 21 KB sessions.json full of integer-like keys and odd floats,
indent=2: 306 us (orjson alone 14 us, stdlib 764 us). loads 14.6 us (json.loads 8.2 us,
orjson.loads 2.6 us).
"""

from __future__ import annotations

from store_sql.formats.js_numbers import JSONValue, NumberLiteral, is_array_index
from store_sql.formats.jsjson_read import JSONSyntaxError, loads, loads_new
from store_sql.formats.jsjson_write import dumps, dumps_bytes

__all__ = [
    "JSONSyntaxError",
    "JSONValue",
    "NumberLiteral",
    "dumps",
    "dumps_bytes",
    "is_array_index",
    "loads",
    "loads_new",
]
