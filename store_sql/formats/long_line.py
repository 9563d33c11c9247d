"""Reading a transcript line too long to parse whole, from its pieces, in bounded memory.

`transcript_jsonl.parse_line` needs the line in memory and builds every value of it: for a
line of hundreds of MB that is several copies of it (a string holding one non-Latin-1
character takes 2 or 4 bytes per character). What the store reads from a line (its kind, a
few short fields, why it is damaged) does not need the long strings, which is where such a
line's bytes are: a tool result, a pasted file, an image in base64.

So the pieces of the line are read once, in order. Every string longer than
`LONG_STRING_BYTES` is checked where it stands (well-formed escapes, no raw control
character, valid UTF-8) and replaced by a short stand-in; everything else is kept as it is.
The kept text (small) then goes through `parse_line`, which decides exactly as for any other
line, and positions in its damage reason are moved back to the line's own. A field whose
value is a long string is read back from the line through `LongLine.resolve`.
"""

from __future__ import annotations

import codecs
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from store_sql.formats.transcript_jsonl import LineKind, parse_line

__all__ = ["LONG_STRING_BYTES", "STRUCTURE_LIMIT_BYTES", "LongLine", "LongLineReader"]

LONG_STRING_BYTES = 1 << 16
"""Strings longer than this are checked in place and not kept."""

STRUCTURE_LIMIT_BYTES = 16 << 20
"""The most a line may hold outside its long strings for `LongLineReader` to read it
(`LongLine.too_structured` otherwise: the caller parses the whole line)."""

# Valid string content in one match (possessive: no backtracking state per escape). On bytes,
# any byte >= 0x80 matches; UTF-8 is checked by a decoder beside it.
_STRING_RUN = re.compile(rb'(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+')
_ESCAPE_START = re.compile(rb"\\(?:u[0-9a-fA-F]{0,3})?")
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")
_BOM = b"\xef\xbb\xbf"
_POSITIONS = re.compile(r"(column |byte |bytes )([0-9][0-9, ]*[0-9]|[0-9])")
_QUOTE, _BACKSLASH = 0x22, 0x5C

# The stand-in for a long string: an escaped NUL, a per-process nonce and the string's number.
# A real string equal to one would have to guess the nonce.
_NONCE = secrets.token_hex(8)


def _stand_in(index: int) -> bytes:
    return f"\\u0000{_NONCE}.{index}".encode()


@dataclass(frozen=True, slots=True)
class _LongString:
    at: int
    """Where its stand-in starts in the kept text (after the opening quote)."""
    kept: int
    """Length of the stand-in (ASCII: bytes and characters)."""
    start: int
    """Where its content starts in the line (after the opening quote)."""
    size: int
    """Bytes of content read (the whole string unless the line ends inside it)."""
    chars: int
    """Characters of content (valid UTF-8 only)."""


@dataclass(frozen=True, slots=True)
class LongLine:
    """What a `LongLineReader` found: `parse_line`'s answer for the whole line."""

    kind: LineKind
    value: dict[str, Any] | None
    """The parsed object with long strings as stand-ins; read fields with `resolve`."""
    damage: str | None
    utf8: bool
    """The line is valid UTF-8 (stored as TEXT, else as BLOB)."""
    too_structured: bool
    """More than `STRUCTURE_LIMIT_BYTES` outside long strings: nothing else is filled in."""
    spans: dict[str, tuple[int, int]]
    """Stand-in -> (start, end) of the string's content in the line."""

    def resolve(self, value: Any, read: Callable[[int, int], bytes]) -> Any:
        """`value` itself, or the string it stands in for, read from the line with `read`
        (start, end) and decoded as JSON.parse does."""
        if type(value) is not str or value not in self.spans:
            return value
        start, end = self.spans[value]
        return json.loads(b'"' + read(start, end) + b'"')


class LongLineReader:
    """Feed the pieces of one line (no newline) in order, then call `finish`."""

    def __init__(self, pos: int) -> None:
        self._pos = pos
        self._kept = bytearray()
        self._size = 0
        self._carry = b""
        self._in_string = False
        self._string_start = 0
        self._short: bytearray | None = None
        self._decoder: Any = None
        self._content_size = 0
        self._content_chars = 0
        self._long: list[_LongString] = []
        self._utf8_error: int | None = None
        self._json_error: tuple[int, str] | None = None
        """(column, reason) of the first syntax error inside a string."""
        self._tail: Any = None
        """After a syntax error: a decoder checking the rest of the line for UTF-8 only."""
        self._too_structured = False
        self._held_cr = False

    def feed(self, piece: bytes) -> None:
        # A final \r (CRLF file) is not part of what is parsed: one is held back until more
        # follows it.
        if self._held_cr:
            piece = b"\r" + piece
        self._held_cr = piece.endswith(b"\r")
        if self._held_cr:
            piece = piece[:-1]
        size = len(piece)
        if self._tail is not None:
            self._check_tail(piece, self._size)
        elif not self._too_structured and self._utf8_error is None:
            self._scan(piece)
        self._size += size

    # --- scanning ------------------------------------------------------------------------

    def _scan(self, piece: bytes, final: bool = False) -> None:
        data = self._carry + piece if self._carry else piece
        base = self._size - len(self._carry)
        self._carry = b""
        i, n = 0, len(data)
        while i < n:
            if not self._in_string:
                quote = data.find(b'"', i)
                end = n if quote < 0 else quote + 1
                self._kept += data[i:end]
                if len(self._kept) > STRUCTURE_LIMIT_BYTES:
                    self._too_structured = True
                    return
                if quote < 0:
                    return
                self._open_string(base + end)
                i = end
                continue
            j = _STRING_RUN.match(data, i).end()  # type: ignore[union-attr]
            self._content(data[i:j], base + i)
            if self._utf8_error is not None or j == n:
                return
            c = data[j]
            if c == _QUOTE:
                self._close_string()
                i = j + 1
            elif c == _BACKSLASH and n - j < 6 and not final:
                self._carry = data[j:]  # an escape the next piece may complete
                return
            elif c == _BACKSLASH and _ESCAPE_START.fullmatch(data, j) is not None:
                self._content(data[j:], base + j)  # the line ends inside an escape: torn
                return
            else:
                self._syntax_error(data, j, base)
                return

    def _open_string(self, start: int) -> None:
        self._in_string = True
        self._string_start = start
        self._short = bytearray()
        self._decoder = None
        self._content_size = self._content_chars = 0

    def _content(self, part: bytes, at: int) -> None:
        if self._short is not None:
            self._short += part
            if len(self._short) <= LONG_STRING_BYTES:
                return
            part, self._short = bytes(self._short), None
            at = self._string_start
            self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._content_size += len(part)
        try:
            self._content_chars += len(self._decoder.decode(part))
        except UnicodeDecodeError as exc:
            self._utf8_error = _error_at(at, part, exc)

    def _close_string(self) -> None:
        self._end_string(final=True)
        self._kept += b'"'
        self._in_string = False
        if len(self._kept) > STRUCTURE_LIMIT_BYTES:
            self._too_structured = True

    def _end_string(self, final: bool) -> None:
        """Keep the string just read, or its stand-in (also for a string the line ends in)."""
        if self._short is not None:
            self._kept += self._short
            self._short = None
            return
        if final and self._utf8_error is None:
            self._utf8_error = _flush(self._decoder, self._string_start + self._content_size)
        kept = _stand_in(len(self._long))
        self._long.append(
            _LongString(len(self._kept), len(kept), self._string_start, self._content_size,
                        self._content_chars)
        )  # fmt: skip
        self._kept += kept

    def _syntax_error(self, data: bytes, j: int, base: int) -> None:
        """The first syntax error inside a string: say where, then only check the rest of the
        line for invalid UTF-8 (which parse_line reports first)."""
        c = data[j]
        if c != _BACKSLASH:
            reason = f"control character U+{c:04X} inside a string"
        elif data[j + 1 : j + 2] == b"u" and not _HEX4.fullmatch(data, j + 2, j + 6):
            reason = "invalid \\u escape (needs four hex digits)"
        else:
            escape = data[j + 1 : j + 5].decode("utf-8", "replace")[:1]
            reason = f"invalid escape \\{escape}"
        inside = self._content_chars
        if self._short is not None:
            inside = len(bytes(self._short).decode("utf-8", "replace"))
        opened = self._map_column(self._chars(len(self._kept)) + 1)
        self._json_error = (opened + inside, reason)
        self._end_string(final=False)
        self._tail = self._decoder or codecs.getincrementaldecoder("utf-8")()
        self._check_tail(data[j:], base + j)

    def _check_tail(self, part: bytes, at: int) -> None:
        if self._utf8_error is not None:
            return
        try:
            self._tail.decode(part)
        except UnicodeDecodeError as exc:
            self._utf8_error = _error_at(at, part, exc)

    # --- the answer ----------------------------------------------------------------------

    def finish(self) -> LongLine:
        """What the line is, as `parse_line` would say of it whole."""
        if self._in_string and self._carry and self._utf8_error is None:
            self._scan(b"", final=True)
        if self._too_structured:
            return LongLine(LineKind.DAMAGED, None, None, False, True, {})
        if self._tail is not None:
            if self._utf8_error is None:
                self._utf8_error = _flush(self._tail, self._size)
        elif self._in_string and self._utf8_error is None:
            self._end_string(final=True)
        kept = bytes(self._kept)
        kind, value, damage = parse_line(kept, self._pos)
        utf8 = self._utf8_error is None and not (damage or "").startswith("invalid UTF-8")
        if not utf8:
            damage = self._utf8_damage(damage)
            return LongLine(LineKind.DAMAGED, None, damage, False, False, {})
        if self._json_error is not None:
            # The kept text ends where the error is: a reason saying it is cut short is the
            # whole line's reason said too early.
            if damage is None or damage.endswith(("(torn line)", "the last one is truncated")):
                column, reason = self._json_error
                damage = f"JSON syntax error at column {column}: {reason}"
            else:
                damage = self._map_damage(damage)
            return LongLine(LineKind.DAMAGED, None, damage, True, False, {})
        if damage is not None:
            damage = self._map_damage(damage)
        spans = {
            _stand_in(i).decode("unicode_escape"): (s.start, s.start + s.size)
            for i, s in enumerate(self._long)
        }
        return LongLine(kind, value, damage, True, False, spans)

    def _utf8_damage(self, damage: str | None) -> str:
        found = [] if self._utf8_error is None else [self._utf8_error]
        if damage is not None and damage.startswith("invalid UTF-8 at byte "):
            found.append(self._map_byte(int(damage.rsplit(" ", 1)[1])))
        return f"invalid UTF-8 at byte {min(found)}"

    def _map_damage(self, damage: str) -> str:
        """Move the positions `parse_line` gave in the kept text to the line's own."""

        def moved(match: re.Match[str]) -> str:
            mapping = self._map_column if match.group(1) == "column " else self._map_byte
            numbers = [mapping(int(n)) for n in match.group(2).split(", ")]
            return match.group(1) + ", ".join(map(str, numbers))

        return _POSITIONS.sub(moved, damage)

    def _map_byte(self, at: int) -> int:
        return at + sum(s.size - s.kept for s in self._long if s.at + s.kept <= at)

    def _map_column(self, column: int) -> int:
        """A 1-based column of the kept text (characters after a line-0 BOM) in the line."""
        return column + sum(
            s.chars - s.kept for s in self._long if self._chars(s.at + s.kept) < column
        )

    def _chars(self, at: int) -> int:
        """Characters of the kept text before byte `at`, a BOM on line 0 not counted."""
        skip = len(_BOM) if self._pos == 0 and self._kept.startswith(_BOM) else 0
        return len(bytes(self._kept[skip:at]).decode("utf-8", "replace"))


def _error_at(at: int, part: bytes, exc: UnicodeDecodeError) -> int:
    """The line offset of a decoding error in `part`, fed at line offset `at`: the decoder
    counts from the start of the bytes it held back from the previous input."""
    return at - (len(exc.object) - len(part)) + exc.start


def _flush(decoder: Any, end: int) -> int | None:
    """Where an incomplete UTF-8 sequence left in `decoder` starts, the input having ended at
    byte `end` of the line (None when nothing is left)."""
    pending = decoder.getstate()[0]
    return end - len(pending) if pending else None
