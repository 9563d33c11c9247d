"""A transcript line too long to hold in memory while it is stored: kept in a temporary file.

Storing a line through a bound parameter needs it three times in memory at once (the bytes
read, SQLite's copy of the parameter, the record). A line longer than `SPOOL_LINE_BYTES` is
therefore written to an unnamed temporary file as it is read, its fields are read on the way
(`formats.long_line`), and the writer copies it into its row in pieces (`importer.rows`):
memory stays near twice the line, all of it SQLite's, with nothing held by Python.
"""

from __future__ import annotations

import tempfile
from typing import Any

from store_sql.formats.long_line import LongLine, LongLineReader
from store_sql.formats.transcript_jsonl import LineKind, parse_line
from store_sql.schema.navigation_lines import SIDE_APPEND_MARK

__all__ = ["SPOOL_LINE_BYTES", "SpooledLine"]

SPOOL_LINE_BYTES = 16 << 20
"""Lines longer than this are spooled (shorter ones are read and stored in memory)."""

_PIECE = 1 << 20


class SpooledLine:
    """One line's bytes (no newline) in a temporary file, and what it holds."""

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.size = 0
        self.has_side_mark = False
        # Closed by `close` once the writer copied it (or when the line is dropped unwritten).
        self._file: Any = tempfile.TemporaryFile(prefix="store-sql-line-")  # noqa: SIM115
        self._reader: LongLineReader | None = LongLineReader(pos)
        self._edge = b""
        self._head = b""
        self._last = 0
        self.read: LongLine | None = None

    def __len__(self) -> int:
        return self.size

    def add(self, piece: bytes) -> None:
        if not piece:
            return
        self._file.write(piece)
        if self._reader is not None:
            self._reader.feed(piece)
        if not self.has_side_mark:  # `tables.side_append`, across the pieces' edges
            window = self._edge + piece[: len(SIDE_APPEND_MARK)]
            self.has_side_mark = SIDE_APPEND_MARK in window or SIDE_APPEND_MARK in piece
            keep = len(SIDE_APPEND_MARK) - 1
            self._edge = (self._edge + piece if len(piece) < keep else piece)[-keep:]
        if len(self._head) < 4:
            self._head += piece[: 4 - len(self._head)]
        self._last = piece[-1]
        self.size += len(piece)

    def finish(self) -> LongLine:
        """Read every piece: what the line is (a line with too much JSON structure for
        `LongLineReader` is read back whole and parsed as any line is)."""
        assert self._reader is not None
        self.read = self._reader.finish()
        self._reader = None
        if self.read.too_structured:
            whole = self.whole()
            kind, value, damage = parse_line(whole, self.pos)
            utf8 = kind is not LineKind.DAMAGED or _is_utf8(whole)
            self.read = LongLine(kind, value, damage, utf8, False, {})
        return self.read

    def startswith(self, prefix: bytes) -> bool:
        return self._head.startswith(prefix)

    @property
    def ends_with_cr(self) -> bool:
        return self._last == 0x0D

    def span(self, start: int, end: int) -> bytes:
        """Bytes `start:end` of the line."""
        self._file.seek(start)
        data: bytes = self._file.read(end - start)
        return data

    def whole(self) -> bytes:
        """All the line's bytes at once (for a writer that can only bind them)."""
        return self.span(0, self.size)

    def pieces(self) -> Any:
        """The line's bytes, in order, in pieces of at most 1 MiB."""
        self._file.seek(0)
        while piece := self._file.read(_PIECE):
            yield piece

    def resolve(self, value: Any) -> Any:
        """A field of the parsed line: the string a stand-in stands for, read back."""
        assert self.read is not None
        return self.read.resolve(value, self.span)

    def close(self) -> None:
        self._file.close()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
