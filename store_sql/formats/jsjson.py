"""JavaScript-exact JSON: the one place store_sql turns values into JSON text and back.

Everything the store writes must be byte-identical to what the gateway's own
``JSON.stringify`` would write (../shared/FORMATS.md section 4), and everything it reads
must be parsed the way ``JSON.parse`` reads it, without losing the spelling of numbers
that JavaScript would have re-spelled.

Writing lets orjson do the work wherever its bytes provably equal JavaScript's (the three
stages under "writing" below). Where they differ:

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
orjson misspells; 13.5 us when usage.cost holds 0.000009 and 3.3e-8 (stage 2 below); 47 us
with a lone surrogate (stage 3 down the path to it); stdlib json.dumps, which is not
JavaScript-exact, 12.5 us. A 21 KB sessions.json full of integer-like keys and odd floats,
indent=2: 306 us (orjson alone 14 us, stdlib 764 us). loads 14.6 us (json.loads 8.2 us,
orjson.loads 2.6 us).
"""

from __future__ import annotations

import enum
import json
import re
import sys
import uuid
from collections.abc import Iterable
from json.encoder import encode_basestring
from typing import Any, Final, Self

import orjson

__all__ = [
    "JSONSyntaxError",
    "JSONValue",
    "NumberLiteral",
    "dumps",
    "dumps_bytes",
    "is_array_index",
    "loads",
]

JSONValue = Any
"""dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None | NumberLiteral"""

_MAX_ARRAY_INDEX: Final = 4294967294
_MAX_INDENT: Final = 10  # JSON.stringify clamps a numeric `space` argument to 10
_DIGITS: Final = frozenset("0123456789")
_NUMBER_GRAMMAR: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_INF: Final = float("inf")


class JSONSyntaxError(ValueError):
    """Text that ``JSON.parse`` would reject; ``line`` and ``column`` are 1-based."""

    def __init__(self, reason: str, line: int, column: int) -> None:
        super().__init__(reason, line, column)
        self.reason = reason
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"invalid JSON: {self.reason} (line {self.line}, column {self.column})"


class NumberLiteral(float):
    """A JSON number kept in its source spelling (``1.0``, ``1E5``, ``-0``, ``1e400``).

    It behaves as the float JavaScript would read (``1e400`` is ``inf``); ``dumps`` writes
    ``source`` verbatim, so a number nobody touched is exported byte for byte.
    """

    __slots__ = ("source",)
    source: str

    def __new__(cls, source: str) -> Self:
        if not isinstance(source, str) or _NUMBER_GRAMMAR.fullmatch(source) is None:
            raise ValueError(f"NumberLiteral needs a JSON number, got {source!r}")
        return cls._exact(float(source), source)

    @classmethod
    def _exact(cls, value: float, source: str) -> Self:
        literal = float.__new__(cls, value)
        literal.source = source
        return literal

    def __getnewargs__(self) -> tuple[str]:  # type: ignore[override]
        return (self.source,)

    def __repr__(self) -> str:
        return f"NumberLiteral({self.source!r})"


def is_array_index(key: str) -> bool:
    """Whether JavaScript treats ``key`` as an array index and lists it first, ascending.

    Only canonical decimals ``"0"``..``"4294967294"`` qualify; ``"01"``, ``"-1"``,
    ``"1.5"`` and ``"4294967295"`` are ordinary keys that keep insertion order.
    """
    if not (key.isascii() and key.isdigit()):
        return False
    if key[0] == "0":
        return key == "0"
    return len(key) <= 10 and int(key) <= _MAX_ARRAY_INDEX


def _float_text(x: float) -> str:
    """JavaScript's Number::toString(x), the spelling JSON.stringify uses."""
    if x != x or x == _INF or x == -_INF:
        return "null"
    if x == 0.0:
        return "0"  # also -0: JavaScript drops the sign
    text = float.__repr__(x)
    if "e" not in text:
        # Python's repr is fixed-point for 1e-4 <= |x| < 1e16, inside JavaScript's range.
        return text[:-2] if text.endswith(".0") else text
    # Python and JavaScript both pick the shortest digits that round-trip (closest on ties);
    # only the layout differs. ECMA-262 Number::toString, with x = 0.digits * 10**n:
    mantissa, _, exponent = text.partition("e")
    sign = "-" if mantissa[0] == "-" else ""
    digits = mantissa.lstrip("-").replace(".", "")
    k, n = len(digits), int(exponent) + 1
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    fraction = "." + digits[1:] if k > 1 else ""
    return f"{sign}{digits[0]}{fraction}e{'+' if n > 0 else '-'}{abs(n - 1)}"


# ---------------------------------------------------------------- writing
#
# Three stages, cheapest first; each later one is exact for more inputs:
# 1. orjson, and a scan of its bytes for the three things it can spell differently
#    (the scan costs about three times what orjson does, and is still the cheap part).
# 2. A walk that swaps each float orjson would misspell for an orjson.Fragment of
#    JavaScript's spelling and rebuilds objects with array-index keys in JavaScript's
#    order, copying only the containers on the way down; then orjson once more.
# 3. _CarefulEncoder: JSON.stringify's rules in Python, for lone surrogates, ints beyond
#    64 bits, subclasses, Enum, UUID, cycles, errors, and indents other than 2. It hands
#    every subtree it can back to stage 2.

_FAST_OPTIONS: Final = (
    # Subclasses, datetimes and dataclasses go to _orjson_default and from there to the
    # careful encoder, which decides about them. orjson still writes Enum members (as their
    # value) and UUIDs (as their string) itself, so the careful encoder does the same:
    # results never depend on which stage ran.
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_FAST_OPTIONS_INDENT_2: Final = _FAST_OPTIONS | orjson.OPT_INDENT_2
_ORJSON_MAX_DEPTH: Final = 250  # orjson refuses to nest deeper than 255

# Stage 1's scan: three searches, because only a literal lead lets `re` skip ahead (one
# regex with alternatives is 3x slower than all three together). They look for
# - a float orjson ends in `.0` (2.0, -0.0, 1e15 as 1000000000000000.0);
# - a float orjson writes with an exponent (always signed: 9e-6, 1e+16);
# - a key ending in a digit, then an all-digit key: a possible array index that JavaScript
#   moves first. `"`, digits, `":` is always a real key, as orjson writes `\"` inside
#   strings; searched backwards so that `:"` can lead.
# Number tokens follow `[`, `:`, `,`, a space or a newline. A hit inside string text only
# costs a detour through stage 2.
_POINT_ZERO: Final = re.compile(rb"\.0[,\]}\n]")
_EXPONENT: Final = re.compile(rb"e[-+](?<=[0-9]e[-+])[0-9]")
_DIGIT_KEY_END: Final = re.compile(rb'":(?<=[0-9]":)')
_DIGIT_KEY_REVERSED: Final = re.compile(rb':"[0-9]+"[{, ]')
_SURROGATES: Final = re.compile(r"[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def _orjson_default(value: object) -> orjson.Fragment:
    if type(value) is NumberLiteral:
        return orjson.Fragment(value.source)
    raise TypeError  # not ours to guess: the careful encoder writes it or names the problem


def _floats_misspelled(out: bytes) -> bool:
    return bool(_POINT_ZERO.search(out) or _EXPONENT.search(out))


def _digit_keys(out: bytes) -> bool:
    return bool(_DIGIT_KEY_END.search(out) and _DIGIT_KEY_REVERSED.search(out[::-1]))


class _NotPlain(Exception):
    """Stage 2 met a value it does not vouch for; the careful encoder takes over."""


def _js_ready(value: Any, depth: int, keys: bool) -> Any:
    """``value`` (a dict, list or tuple), or a copy orjson writes as JSON.stringify would.

    ``keys=False`` promises that no object has an all-digit key, which saves a look at
    every key (stage 1 knows).
    """
    if depth > _ORJSON_MAX_DEPTH:
        raise _NotPlain
    copy: Any = None
    is_dict = type(value) is dict
    for key, item in value.items() if is_dict else enumerate(value):
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            # orjson writes 1e-5 <= |x| < 1e16 in fixed notation with the shortest
            # round-trip digits, as JavaScript does; a margin on both ends costs nothing.
            if 1e-4 <= abs(item) < 1e15 and not item.is_integer():
                continue
            new = orjson.Fragment(_float_text(item))
        elif kind is dict or kind is list or kind is tuple:
            new = _js_ready(item, depth + 1, keys)
            if new is item:
                continue
        elif kind is NumberLiteral or kind is orjson.Fragment:
            continue  # orjson writes a Fragment as it is, _orjson_default a NumberLiteral
        else:
            raise _NotPlain
        if copy is None:
            copy = dict(value) if is_dict else list(value)
        copy[key] = new
    # min() compares the keys in C: when the smallest sorts after "9", no key starts with
    # a digit, and that is most objects.
    if keys and is_dict and value and min(value) < ":":
        source = value if copy is None else copy
        first = [key for key in source if key[:1] in _DIGITS and is_array_index(key)]
        if first:
            copy = {key: source[key] for key in sorted(first, key=int)}
            copy.update(source)  # the other keys follow, in insertion order
    return value if copy is None else copy


def _ready_bytes(value: object, options: int, keys: bool = True) -> bytes | None:
    """Stage 2: exact bytes for a dict, list or tuple, or None for the careful encoder."""
    try:
        return orjson.dumps(_js_ready(value, 0, keys), default=_orjson_default, option=options)
    except (_NotPlain, TypeError):  # TypeError: a key that is not a str; orjson's errors
        return None


def _js_surrogate(match: re.Match[str]) -> str:
    found = match.group()
    if len(found) == 2:  # a pair stored as two code points is one character to JavaScript
        return found.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    return f"\\u{ord(found):04x}"


def _string_bytes(text: str) -> bytes:
    try:
        return orjson.dumps(text)
    except orjson.JSONEncodeError:  # surrogates: JSON.stringify writes lone ones as \udxxx
        return _SURROGATES.sub(_js_surrogate, encode_basestring(text)).encode("utf-8")


class _PathError(Exception):
    """An encoding failure on its way out, collecting the path to the offending value."""

    def __init__(self, kind: type[Exception], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.path: list[str | int] = []  # innermost step first

    def public(self) -> Exception:
        where = "$"
        for step in reversed(self.path):
            if isinstance(step, int):
                where += f"[{step}]"
            elif _IDENTIFIER.fullmatch(step):
                where += f".{step}"
            else:
                where += f"[{_string_bytes(step).decode()}]"
        return self.kind(f"{self.message} (at {where})")


def _js_ordered_items(obj: dict[Any, Any]) -> Iterable[tuple[str, Any]]:
    index_keys: list[str] = []
    for key in obj:
        if not isinstance(key, str):
            raise _PathError(TypeError, f"object keys must be str, not {type(key).__name__}")
        if key[:1] in _DIGITS and is_array_index(key):
            index_keys.append(key)
    if not index_keys:
        return obj.items()
    index_keys.sort(key=int)
    ordered = [(key, obj[key]) for key in index_keys]
    ordered += [(key, item) for key, item in obj.items() if not is_array_index(key)]
    return ordered


class _CarefulEncoder:
    """Stage 3: JSON.stringify's rules in Python, handing plain subtrees to stage 2."""

    __slots__ = ("_indent", "_open", "_options", "_out")

    def __init__(self, indent: int) -> None:
        self._indent = indent
        # orjson only indents by two; other widths stay in Python all the way down.
        self._options = {0: _FAST_OPTIONS, 2: _FAST_OPTIONS_INDENT_2}.get(indent)
        self._out: list[bytes] = []
        self._open: set[int] = set()  # containers being written: meeting one again is a cycle

    def encode(self, value: object, depth: int, *, stage_2_failed: bool = False) -> bytes:
        if stage_2_failed:
            self._container(value, depth)
        else:
            self._value(value, depth)
        return b"".join(self._out)

    def _value(self, value: object, depth: int) -> None:
        kind = type(value)
        if kind is str:
            self._out.append(_string_bytes(value))  # type: ignore[arg-type]
        elif kind is dict or kind is list or kind is tuple:
            ready = None if self._options is None else _ready_bytes(value, self._options)
            if ready is None:
                self._container(value, depth)
            else:
                self._out.append(_indented(ready, depth))
        elif kind is int:
            self._out.append(int.__repr__(value).encode())
        elif kind is float:
            self._out.append(_float_text(value).encode())  # type: ignore[arg-type]
        elif value is None:
            self._out.append(b"null")
        elif value is True:
            self._out.append(b"true")
        elif value is False:
            self._out.append(b"false")
        else:
            self._other(value, depth)

    def _other(self, value: object, depth: int) -> None:
        if isinstance(value, NumberLiteral):
            self._out.append(value.source.encode())
        elif isinstance(value, enum.Enum):
            self._value(value.value, depth)
        elif isinstance(value, uuid.UUID):
            self._out.append(f'"{value}"'.encode())
        elif isinstance(value, orjson.Fragment):
            self._out.append(orjson.dumps(value))
        elif isinstance(value, str):
            self._out.append(_string_bytes(str.__str__(value)))
        elif isinstance(value, int):
            self._out.append(int.__repr__(value).encode())
        elif isinstance(value, float):
            self._out.append(_float_text(value).encode())
        elif isinstance(value, dict | list | tuple):
            self._container(value, depth)
        else:
            message = f"Object of type {type(value).__name__} is not JSON serializable"
            raise _PathError(TypeError, message)

    def _container(self, value: Any, depth: int) -> None:
        if not value:
            self._out.append(b"{}" if isinstance(value, dict) else b"[]")
            return
        if id(value) in self._open:
            raise _PathError(ValueError, "circular reference: JSON.stringify would throw")
        self._open.add(id(value))
        out = self._out
        if self._indent:
            newline = b"\n" + b" " * (self._indent * (depth + 1))
            separator, between, colon = newline, b"," + newline, b": "
            close = newline[: -self._indent]
        else:
            separator, between, colon, close = b"", b",", b":", b""
        if isinstance(value, dict):
            out.append(b"{")
            for key, item in _js_ordered_items(value):
                out.append(separator)
                out.append(_string_bytes(key))
                out.append(colon)
                separator = between
                try:
                    self._value(item, depth + 1)
                except _PathError as failure:
                    failure.path.append(key)
                    raise
            out.append(close + b"}")
        else:
            out.append(b"[")
            for index, item in enumerate(value):
                out.append(separator)
                separator = between
                try:
                    self._value(item, depth + 1)
                except _PathError as failure:
                    failure.path.append(index)
                    raise
            out.append(close + b"]")
        self._open.discard(id(value))


def _indented(out: bytes, depth: int) -> bytes:
    # orjson indents from column 0; an embedded subtree starts `depth` levels in. Raw
    # newlines in orjson's output are all layout: inside strings it writes `\n`.
    return out.replace(b"\n", b"\n" + b"  " * depth) if depth else out


def dumps_bytes(value: object, *, indent: int = 0, level: int = 0) -> bytes:
    """The UTF-8 bytes of ``dumps(value, indent=indent, level=level)``, without a detour
    through ``str``."""
    width = min(indent, _MAX_INDENT) if indent > 0 else 0
    depth = max(level, 0) if width else 0
    kind = type(value)
    stage_2_failed = False
    if (kind is dict or kind is list) and (width == 0 or width == 2):
        options = _FAST_OPTIONS_INDENT_2 if width else _FAST_OPTIONS
        try:
            out = orjson.dumps(value, default=_orjson_default, option=options)
        except orjson.JSONEncodeError:
            stage_2_failed = True  # it would raise the same way
        else:
            keys = _digit_keys(out)
            if not keys and not _floats_misspelled(out):
                return _indented(out, depth)
            ready = _ready_bytes(value, options, keys)
            if ready is not None:
                return _indented(ready, depth)
            stage_2_failed = True
    try:
        return _CarefulEncoder(width).encode(value, depth, stage_2_failed=stage_2_failed)
    except _PathError as failure:
        raise failure.public() from None
    except RecursionError:
        # JSON.stringify gives up too (RangeError), at a few thousand levels in Node 20.
        raise ValueError("value nested too deeply to write as JSON") from None


def dumps(value: object, *, indent: int = 0, level: int = 0) -> str:
    """Exactly what JavaScript's ``JSON.stringify(value, null, indent)`` returns.

    ``indent=0`` means compact; like JavaScript, widths above 10 count as 10. ``level`` is
    the nesting depth the value starts at when it is embedded in a larger indented
    document: with ``indent=2, level=1`` nested lines are indented by 4 spaces and the
    closing bracket by 2, so ``'{\\n  "k": ' + dumps(v, indent=2, level=1) + '\\n}'`` equals
    ``JSON.stringify({k: v}, null, 2)``.

    Accepts dict (str keys only), list, tuple, str, int, float, bool, None and
    NumberLiteral (written as its source text), plus subclasses of these, Enum members
    (their value) and UUIDs (their string) as orjson does, and orjson.Fragment (written
    as it is: the caller vouches for it). Anything else raises TypeError
    naming the type and the path to it; a cycle raises ValueError.

    Differences from JavaScript a Python caller can meet: ints are written with all their
    digits, also beyond 2**53 where a JavaScript reader would round them; NaN and the
    infinities become ``null`` as in JavaScript.
    """
    return dumps_bytes(value, indent=indent, level=level).decode("utf-8")


# ---------------------------------------------------------------- reading


class _ConstantFound(Exception):
    """NaN/Infinity reached the parser: Python's json accepts them, JSON.parse does not."""


def _parse_int(source: str) -> Any:
    if len(source) < 16 and source != "-0":  # below 2**53: JavaScript spells it the same
        return int(source)
    value = float(source)
    if _float_text(value) == source:
        return int(source)
    return NumberLiteral._exact(value, source)


def _parse_float(source: str) -> Any:
    value = float(source)
    if _float_text(value) == source:
        return value
    return NumberLiteral._exact(value, source)


def _reject_constant(name: str) -> Any:
    raise _ConstantFound(name)


_DECODER: Final = json.JSONDecoder(
    parse_float=_parse_float, parse_int=_parse_int, parse_constant=_reject_constant
)
# The C scanner recurses once per level and counts against the recursion limit, which is
# 1,000 unless someone raised it.
_MAX_NESTING: Final = 1000
_STRING_OR_CONSTANT: Final = re.compile(r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN', re.DOTALL)
_STRING_OR_BRACKET: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', re.DOTALL)


def _line_column(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _first_constant(text: str) -> int:
    # The parser got this far, so everything before the constant is valid JSON and the
    # first constant outside a string is the one it met.
    for token in _STRING_OR_CONSTANT.finditer(text):
        if token[0][0] != '"':
            return token.start()
    return 0


def _deepest_bracket(text: str) -> tuple[int, int]:
    depth, deepest, where = 0, 0, 0
    for token in _STRING_OR_BRACKET.finditer(text):
        char = token[0][0]
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, token.start()
        elif char in "]}":
            depth -= 1
    return deepest, where


def _too_deep(text: str, deepest: int, pos: int) -> JSONSyntaxError:
    line, column = _line_column(text, pos)
    reason = f"nested {deepest} levels deep; loads() stops at about {_MAX_NESTING}"
    return JSONSyntaxError(reason, line, column)


def _decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        head = data[: error.start]
        line = head.count(b"\n") + 1
        column = len(head[head.rfind(b"\n") + 1 :].decode("utf-8")) + 1
        reason = f"invalid UTF-8 byte 0x{data[error.start]:02x}"
        raise JSONSyntaxError(reason, line, column) from None


def loads(text: str | bytes) -> Any:
    """Parse JSON with ``JSON.parse`` semantics, strictly; raise JSONSyntaxError otherwise.

    Rejects NaN/Infinity, trailing commas, comments, single quotes, raw control characters
    in strings, a leading BOM, invalid UTF-8 in bytes, and trailing data. Duplicate keys:
    the last value wins at the first key's position, as in JavaScript. Lone surrogate
    escapes (``"\\ud800"``) become lone surrogate code points.

    Numbers keep their spelling: a number JavaScript would write back the same way comes
    back as a plain int (no fraction or exponent) or float; any other spelling (``1.0``,
    ``1E5``, ``-0``, ``0.10``, ``1e400``, ``12345678901234567890``) comes back as a
    NumberLiteral, so ``dumps(loads(s))`` reproduces untouched numbers byte for byte.

    Nesting deeper than about 1,000 levels (Python's default recursion limit; JSON.parse
    has no limit) raises JSONSyntaxError at the first bracket of the deepest level instead
    of crashing, also when the recursion limit was raised.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        text = _decode_utf8(bytes(text))
    elif not isinstance(text, str):
        raise TypeError(f"loads() takes str or bytes, not {type(text).__name__}")
    if sys.getrecursionlimit() > _MAX_NESTING and text.count("[") + text.count("{") > _MAX_NESTING:
        # Someone raised the recursion limit, so the C scanner would recurse until the C
        # stack overflows (a segfault at 100,000 levels on Linux): measure the depth first.
        deepest, pos = _deepest_bracket(text)
        if deepest > _MAX_NESTING:
            raise _too_deep(text, deepest, pos)
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as error:
        reason = error.msg.removesuffix(" at")  # "Invalid control character at"
        raise JSONSyntaxError(reason, error.lineno, error.colno) from None
    except _ConstantFound as found:
        line, column = _line_column(text, _first_constant(text))
        raise JSONSyntaxError(f"{found} is not JSON", line, column) from None
    except RecursionError:
        raise _too_deep(text, *_deepest_bracket(text)) from None
