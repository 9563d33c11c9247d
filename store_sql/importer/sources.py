"""The source side of an import, run in worker threads: reading files, never writing them.

`decide_start` compares a transcript file with what the store holds for it (docs/FORMATS.md,
section 3): nothing stored -> read it all; the imported prefix still matches its
`source_sha256` -> unchanged, or read only what was added (an unterminated last line is
read again whole); anything else -> read it all as a new version superseding the old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Any, BinaryIO

from store_sql.formats.transcript_jsonl import LineKind, classify_line
from store_sql.formats.zstd_stream import ZstdStream
from store_sql.importer import rows as db
from store_sql.importer.chunks import READ_BYTES, LineChunker, LineStats, sha256_prefix
from store_sql.importer.plan import SourceFile
from store_sql.importer.report import FileStatus

_PEEK_BYTES = 64 << 10


@dataclass(slots=True)
class ReadStart:
    """Where reading a transcript starts, decided from the stored row and the file."""

    status: FileStatus
    stream: BinaryIO | None
    hasher: Any
    target: db.NewTranscript | db.Continuation | None
    start_offset: int = 0
    first_pos: int = 0
    version: int | None = None
    has_header: bool = False
    prev_entry_pos: int | None = None
    message: str | None = None


def decide_start(
    src: SourceFile, stored: db.StoredSource | None, new: db.NewTranscript
) -> ReadStart:
    """How to read `src` given what the store holds for it (see the module doc)."""
    stream = src.open()
    try:
        return _decide_open(stream, stored, new)
    except BaseException:
        stream.close()
        raise


def _decide_open(
    stream: BinaryIO, stored: db.StoredSource | None, new: db.NewTranscript
) -> ReadStart:
    def from_scratch(status: FileStatus, message: str | None, supersedes: int | None) -> ReadStart:
        stream.seek(0)
        target = dataclasses.replace(new, supersedes=supersedes)
        return ReadStart(status, stream, hashlib.sha256(), target, message=message)

    if stored is None:
        return from_scratch("imported", None, None)
    tid = stored.transcript_id
    if stored.source_size is None or stored.source_sha256 is None or stored.compressed:
        return from_scratch(
            "new_version", "the stored transcript was not imported from this file", tid
        )
    size = _size(stream)
    if size < stored.source_size:
        return from_scratch("new_version", "the file is shorter than what was imported", tid)
    redo = not stored.ends_with_newline and stored.line_count > 0
    keep = stored.source_size - (stored.last_line_bytes if redo else 0)
    hasher = sha256_prefix(stream, keep)
    whole = hasher.copy() if hasher is not None else None
    rest = stream.read(stored.source_size - keep) if whole is not None else b""
    if whole is None or len(rest) != stored.source_size - keep:
        return from_scratch("new_version", "the file changed while it was read", tid)
    whole.update(rest)
    if whole.hexdigest() != stored.source_sha256:
        return from_scratch(
            "new_version", "the file changed before its end since the last import", tid
        )
    if size == stored.source_size:
        stream.close()
        note = "the store holds API appends beyond this file" if stored.api_appended else None
        return ReadStart("unchanged", None, None, None, message=note)
    if stored.api_appended:
        return from_scratch(
            "new_version",
            "the file grew, but the store has API appends of its own beyond the imported part",
            tid,
        )
    stream.seek(keep)
    first_pos = stored.line_count - redo
    target = db.Continuation(tid, stored.line_count, stored.source_size, new.file_name, redo)
    return ReadStart(
        "appended",
        stream,
        hasher,
        target,
        start_offset=keep,
        first_pos=first_pos,
        version=stored.version,
        has_header=stored.version is not None,
        prev_entry_pos=stored.entry_before_last if redo else stored.leaf_pos,
    )


def _size(stream: BinaryIO) -> int:
    return os.fstat(stream.fileno()).st_size


def hash_file(src: SourceFile) -> tuple[int, str]:
    hasher = hashlib.sha256()
    size = 0
    with src.open() as f:
        while block := f.read(READ_BYTES):
            hasher.update(block)
            size += len(block)
    return size, hasher.hexdigest()


def parse_compressed(src: SourceFile, stats: LineStats) -> None:
    lines = ZstdStream(src.open(), src.name)
    try:
        for _ in LineChunker(lines, stats=stats):
            pass
    finally:
        lines.close()


def looks_like_transcript(src: SourceFile) -> bool:
    """An unknown ``*.jsonl`` is a transcript (kind 'other') when its first line is a header."""
    if src.info.compressed or not src.name.endswith(".jsonl") or "/" in src.name:
        return False
    with src.open() as f:
        head = f.read(_PEEK_BYTES)
    first, newline, _ = head.partition(b"\n")
    if not newline and len(head) == _PEEK_BYTES:
        return False
    return classify_line(first, 0).kind is LineKind.HEADER
