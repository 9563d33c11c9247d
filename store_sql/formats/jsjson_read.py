"""JSON.parse, strictly, keeping number spellings: `loads` (see `jsjson` for the rules)."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Final

import orjson

from store_sql.formats.js_numbers import NumberLiteral, js_number_text


class JSONSyntaxError(ValueError):
    """Text that ``JSON.parse`` would reject; ``line`` and ``column`` are 1-based."""

    def __init__(self, reason: str, line: int, column: int) -> None:
        super().__init__(reason, line, column)
        self.reason = reason
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"invalid JSON: {self.reason} (line {self.line}, column {self.column})"


# ---------------------------------------------------------------- reading


class _ConstantFound(Exception):
    """NaN/Infinity reached the parser: Python's json accepts them, JSON.parse does not."""


def _parse_int(source: str) -> Any:
    if len(source) < 16 and source != "-0":  # below 2**53: JavaScript spells it the same
        return int(source)
    value = float(source)
    if js_number_text(value) == source:
        return int(source)
    return NumberLiteral._exact(value, source)


def _parse_float(source: str) -> Any:
    value = float(source)
    if js_number_text(value) == source:
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


# --- the fast path -----------------------------------------------------------------------
#
# Most JSON the store reads back was written by JavaScript or by `dumps`: every number in it
# is spelled the way JavaScript spells it. orjson parses such text 5x faster than the hooked
# stdlib decoder, and its result is exact when the text holds no float (whose spelling
# could be non-canonical, like 1.0 or 1E5), no integer JavaScript would re-spell (|n| >=
# 2**53), and no "-0" (orjson reads it as 0). Anything else, and anything orjson refuses
# (lone surrogates, NaN, ints beyond 64 bits, deep nesting), takes the exact path below.

_NOT_PLAIN: Final = object()
_MINUS_ZERO: Final = re.compile(r"-0(?![0-9])")
_SAFE_INT: Final = 2**53


def _plain(value: Any) -> bool:
    """No float and no integer beyond JavaScript's safe range anywhere in `value`."""
    stack = [value]
    while stack:
        item = stack.pop()
        cls = item.__class__
        if cls is dict:
            stack.extend(item.values())
        elif cls is list:
            stack.extend(item)
        elif cls is float or (cls is int and not -_SAFE_INT < item < _SAFE_INT):
            return False
    return True


def _loads_plain(text: str) -> Any:
    if _MINUS_ZERO.search(text) is not None:
        return _NOT_PLAIN
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _NOT_PLAIN
    return value if _plain(value) else _NOT_PLAIN


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
    fast = _loads_plain(text)
    if fast is not _NOT_PLAIN:
        return fast
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


def loads_new(text: str | bytes) -> Any:
    """Parse JSON text that brings a *new* value (a patch or an entry given on the command
    line or in a request body): as ``JSON.parse`` reads it, with every number the JavaScript
    number it denotes, so it is written as ``JSON.stringify`` writes it (``1e21`` becomes
    ``1e+21``, ``1.0`` becomes ``1``, ``-0`` becomes ``0``), as the gateway would store it.
    Only bytes already stored keep their spelling (`loads`). Errors as `loads`."""
    return _js_numbers(loads(text))


def _js_numbers(value: Any) -> Any:
    cls = value.__class__
    if cls is NumberLiteral:
        return float(value)
    if cls is dict:
        return {key: _js_numbers(item) for key, item in value.items()}
    if cls is list:
        return [_js_numbers(item) for item in value]
    return value
