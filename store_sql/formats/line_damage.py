"""Why a transcript line is not one JSON object, said precisely enough to repair it.

`transcript_jsonl.parse_line` hands over the lines orjson refuses. Some are still JSON
(integers past 64 bits, a few escapes orjson reads differently) and are parsed here the way
JSON.parse would; the rest get a reason with a position: invalid UTF-8 at a byte, a torn
record, two records glued together by concurrent appends, a stray character.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

# JSON.parse whitespace (ECMA-404): only these four; a line made of anything else is not blank.
_WS_RUN = re.compile(r"[ \t\n\r]*")


def _reject_constant(name: str) -> Any:
    # The stdlib accepts NaN/Infinity; JSON.parse does not, so neither may the fallback.
    raise ValueError(f"{name} is not JSON")


def _parse_long_int(digits: str) -> int | float:
    # Python refuses int(str) past 4300 digits; JSON.parse reads any integer as a double.
    return int(digits) if len(digits) < 4000 else float(digits)


_FALLBACK_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_long_int)


def parse_fallback(body: bytes, skip: int) -> tuple[Any, str | None]:
    """Parse what orjson refused: ``(value, None)``, or ``(None, why it is damaged)``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 at byte {exc.start + skip}"
    try:
        value, end = _FALLBACK_DECODER.raw_decode(text, _skip_ws(text, 0))
    except (ValueError, RecursionError) as exc:
        return None, _diagnose(text, skip, exc)
    if _skip_ws(text, end) == len(text):
        return value, None
    return None, _diagnose(text, skip, None)


def _skip_ws(text: str, i: int) -> int:
    match = _WS_RUN.match(text, i)
    return match.end() if match else i


def _diagnose(text: str, skip: int, python_error: BaseException | None) -> str:
    """Explain why a line that neither parser accepts is not one JSON object."""
    start = _skip_ws(text, 0)
    scan = _scan_value(text, start)
    if scan.status == "eof":
        return "truncated JSON (torn line)"
    if scan.status == "error":
        return f"JSON syntax error at column {scan.pos + 1}: {scan.reason}"
    rest = _skip_ws(text, scan.pos)
    if rest == len(text):
        # Valid JSON (JSON.parse reads it) that Python's parsers refused: in practice nesting
        # deeper than their recursion limits (orjson 1024 levels, the stdlib about 1000).
        if isinstance(python_error, RecursionError):
            return (
                f"nested {scan.depth} levels deep: valid JSON, but deeper than Python's JSON "
                "parsers accept (about 1000 levels)"
            )
        return f"valid JSON that Python cannot read: {python_error}"
    if text[start] != "{" or text[rest] != "{":
        return f"JSON syntax error at column {rest + 1}: unexpected data after the JSON value"
    return _describe_glued(text, start, scan.pos, skip)


def _describe_glued(text: str, first: int, end: int, skip: int) -> str:
    """Name the records of a line holding several objects written without a newline between."""
    starts = [first]
    torn = False
    i = _skip_ws(text, end)
    while i < len(text):
        if text[i] != "{":
            return f"JSON syntax error at column {i + 1}: unexpected data after the JSON value"
        scan = _scan_value(text, i)
        if scan.status == "error":
            return f"JSON syntax error at column {scan.pos + 1}: {scan.reason}"
        starts.append(i)
        if scan.status == "eof":
            torn = True
            break
        i = _skip_ws(text, scan.pos)
    # Byte offsets into raw (BOM included) let a repair tool cut the line with raw[a:b].
    offsets = [len(text[:s].encode("utf-8")) + skip for s in starts]
    tail = "; the last one is truncated" if torn else ""
    if len(starts) == 2:
        return f"two JSON records glued together (second starts at byte {offsets[1]}){tail}"
    listed = ", ".join(str(o) for o in offsets)
    return f"{len(starts)} JSON records glued together (they start at bytes {listed}){tail}"


@dataclass(frozen=True, slots=True)
class _Scan:
    status: Literal["complete", "eof", "error"]  # eof: the input ended inside the value
    pos: int
    reason: str = ""
    depth: int = 0


# Valid string content (plain characters and well-formed escapes) in one match. Possessive
# quantifiers keep the regex engine from saving backtrack state per escape: a 12 MB torn tool
# result full of \n escapes scans in 0.15 s instead of 2 s.
_STRING_RUN = re.compile(r'(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_ESCAPES = frozenset('"\\/bfnrt')
_LITERALS = ("true", "false", "null")


def _scan_value(text: str, i: int) -> _Scan:
    """Check the JSON value at ``i`` without building it, iteratively (no depth limit).

    Only damaged lines come here, so clarity beats speed. The point is to tell a line torn
    mid-write (input ends while the value is incomplete) from a genuine syntax error.
    """
    n = len(text)
    stack: list[str] = []  # the closing bracket of each open container
    depth = 0
    expect = "value"  # value | value_or_close | key | key_or_close | colon | comma_or_close
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            return _Scan("eof", i, depth=depth)
        c = text[i]
        if expect == "colon":
            if c != ":":
                return _Scan("error", i, f"expected ':' after the property name, found {c!r}")
            i, expect = i + 1, "value"
            continue
        if expect == "comma_or_close":
            if c == ",":
                i, expect = i + 1, ("key" if stack[-1] == "}" else "value")
                continue
            if c != stack[-1]:
                return _Scan("error", i, f"expected ',' or {stack[-1]!r}, found {c!r}")
            stack.pop()
            i += 1
        elif expect in ("key", "key_or_close"):
            if c == "}" and expect == "key_or_close":
                stack.pop()
                i += 1
            elif c == '"':
                scan = _scan_string(text, i)
                if scan.status != "complete":
                    return scan
                i, expect = scan.pos, "colon"
                continue
            else:
                return _Scan("error", i, f"expected a property name in double quotes, found {c!r}")
        elif c == "]" and expect == "value_or_close":
            stack.pop()
            i += 1
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
            depth = max(depth, len(stack))
            i, expect = i + 1, ("key_or_close" if c == "{" else "value_or_close")
            continue
        else:
            scan = _scan_scalar(text, i)
            if scan.status != "complete":
                return scan
            i = scan.pos
        if not stack:
            return _Scan("complete", i, depth=depth)
        expect = "comma_or_close"


def _scan_scalar(text: str, i: int) -> _Scan:
    c = text[i]
    if c == '"':
        return _scan_string(text, i)
    if c in "-0123456789":
        return _scan_number(text, i)
    for word in _LITERALS:
        if text.startswith(word, i):
            return _Scan("complete", i + len(word))
        if word.startswith(text[i : i + len(word)]) and i + len(word) > len(text):
            return _Scan("eof", len(text))
    if c == "\ufeff":
        return _Scan("error", i, "unexpected byte order mark (U+FEFF)")
    return _Scan("error", i, f"unexpected character {c!r}")


def _scan_string(text: str, i: int) -> _Scan:
    n = len(text)
    i += 1
    while True:
        match = _STRING_RUN.match(text, i)
        i = match.end() if match else i
        if i >= n:
            return _Scan("eof", n)
        c = text[i]
        if c == '"':
            return _Scan("complete", i + 1)
        if c != "\\":
            return _Scan("error", i, f"control character U+{ord(c):04X} inside a string")
        if i + 1 >= n:
            return _Scan("eof", n)
        escape = text[i + 1]
        if escape == "u":
            hex_digits = text[i + 2 : i + 6]
            if not _HEX4.fullmatch(hex_digits):
                if len(hex_digits) < 4 and all(h in "0123456789abcdefABCDEF" for h in hex_digits):
                    return _Scan("eof", n)
                return _Scan("error", i, "invalid \\u escape (needs four hex digits)")
            i += 6
        elif escape in _ESCAPES:
            i += 2
        else:
            return _Scan("error", i, f"invalid escape \\{escape}")


def _scan_number(text: str, i: int) -> _Scan:
    n = len(text)
    match = _NUMBER.match(text, i)
    if match is None:  # "-" not followed by a digit
        if i + 1 >= n:
            return _Scan("eof", n)
        return _Scan("error", i, "invalid number")
    j = match.end()
    if j < n and text[j] == "." and match.group(1) is None and match.group(2) is None:
        return _Scan("eof", n) if j + 1 >= n else _Scan("error", j, "invalid number")
    if j < n and text[j] in "eE" and match.group(2) is None:
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        return _Scan("eof", n) if k >= n else _Scan("error", j, "invalid number")
    return _Scan("complete", j)
