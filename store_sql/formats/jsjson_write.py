"""JSON.stringify, byte for byte: `dumps` and `dumps_bytes` (see `jsjson` for the rules)."""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable
from json.encoder import encode_basestring
from typing import Any, Final

import orjson

from store_sql.errors import InvalidEntryError
from store_sql.formats.js_numbers import NumberLiteral, is_array_index, js_number_text

_MAX_INDENT: Final = 10  # JSON.stringify clamps a numeric `space` argument to 10
_DIGITS: Final = frozenset("0123456789")

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
            new = orjson.Fragment(js_number_text(item))
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
            self._out.append(js_number_text(value).encode())  # type: ignore[arg-type]
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
            self._out.append(js_number_text(value).encode())
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
        # InvalidEntryError is a ValueError: the value, not the store, is at fault.
        raise InvalidEntryError("value nested too deeply to write as JSON") from None


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
