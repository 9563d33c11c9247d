"""The database side of an import on PostgreSQL: the async twins of `importer.rows`,
`session_index`, `session_directory` and `database_rows` (docs/POSTGRES.md).

What is imported and how it is decided is shared with SQLite; here are only the statements,
written set-based: a chunk's lines go in by one binary COPY (`copy_records_to_table`), their
parent lookups and idempotency keys by one statement each over arrays (`unnest`), so a chunk
of ~1 MB costs a handful of round trips whatever its line count. A line is `line` (text)
when it is valid UTF-8 without NUL, else `line_bytes` (bytea): PostgreSQL's text holds
neither invalid UTF-8 nor NUL. Extracted columns holding a NUL (a JSON ``\\u0000``) are
left NULL, as columns holding a lone surrogate are on both backends; the line keeps it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any, BinaryIO

from store_sql.engine.pg.connection import PgConnection as Connection
from store_sql.errors import ImportFailedError
from store_sql.formats.import_archive import ArchivedFile
from store_sql.formats.in_tree import TreeFile
from store_sql.formats.sessions_dir import ENTRIES_DIR, STATE_FILE, EntryFile
from store_sql.formats.sessions_json import entry_text
from store_sql.formats.zstd_stream import ZstdStream
from store_sql.importer import database_rows as origin_db
from store_sql.importer.chunks import PARENT_ID, LineChunk, LineChunker, LineStats
from store_sql.importer.rows import Continuation, NewTranscript, StoredSource
from store_sql.importer.session_directory import (
    ARCHIVE_KIND,
    IGNORED_KIND,
    DirectoryOutcome,
    DirectoryPlan,
    DirectorySource,
    DirectoryState,
    StoredFile,
    dir_file_name,
    entry_sha256,
    needs_entries,
    plan_directory,
)
from store_sql.importer.session_index import IndexOutcome, IndexSource, decide_index
from store_sql.importer.spooled_line import SpooledLine
from store_sql.sessions.columns import COLUMN_NAMES, entry_columns
from store_sql.transcripts.rows import KINDS, now_iso

Opener = Callable[[], BinaryIO]

BYTEA_PIECE = 16 << 20
"""A file's bytes go into a bytea cell in pieces of this size (the first by INSERT, the rest
appended), so an import holds at most one piece of an opaque file or archive in memory."""

_LINE_COLUMNS = (
    "transcript_id", "pos", "line", "line_bytes", "kind", "entry_id", "parent_id",
    "parent_pos", "type", "role", "timestamp", "idempotency_key", "byte_size", "damage",
    "side_append",
)  # fmt: skip
_NUL_ESCAPE = b"\\u0000"

# --- transcripts: what the store holds for a source file -------------------------------------


async def current_transcript(
    conn: Connection, agent_id: str, rel_dir: str, file_name: str
) -> StoredSource | None:
    row = await conn.fetchrow(
        "SELECT t.transcript_id, t.line_count, t.byte_size, t.source_size, t.source_sha256, "
        "t.ends_with_newline, t.version, t.compressed_bytes IS NOT NULL, t.leaf_pos, "
        "(SELECT byte_size FROM transcript_lines l WHERE l.transcript_id = t.transcript_id "
        "AND l.pos = t.line_count - 1), "
        "(SELECT max(pos) FROM transcript_lines l WHERE l.transcript_id = t.transcript_id "
        "AND l.kind = 'entry' AND l.pos < t.line_count - 1) "
        "FROM transcripts t WHERE agent_id = $1 AND rel_dir = $2 AND file_name = $3 "
        "AND superseded_by IS NULL ORDER BY transcript_id DESC LIMIT 1",
        agent_id,
        rel_dir,
        file_name,
    )
    if row is None:
        return None
    return StoredSource(
        transcript_id=row[0],
        line_count=row[1],
        byte_size=row[2],
        source_size=row[3],
        source_sha256=row[4],
        ends_with_newline=bool(row[5]),
        version=row[6],
        compressed=bool(row[7]),
        last_line_bytes=0 if row[9] is None else int(row[9]),
        entry_before_last=None if row[10] is None else int(row[10]),
        leaf_pos=row[8],
    )


# --- transcripts: writing chunks -------------------------------------------------------------


async def _create(conn: Connection, new: NewTranscript, chunk: LineChunk | None) -> int:
    header = chunk.header if chunk is not None else None
    if new.kind not in KINDS:
        raise ImportFailedError(f"unknown transcript kind {new.kind!r}; expected one of {KINDS}")
    if new.supersedes is not None:
        still = await conn.fetchrow(
            "SELECT superseded_by FROM transcripts WHERE transcript_id = $1 FOR UPDATE",
            new.supersedes,
        )
        if still is None or still[0] is not None:
            raise ImportFailedError(
                f"{new.file_name}: the stored version changed during the import; run it again"
            )
    tid: int = await conn.fetchval(
        "INSERT INTO transcripts (agent_id, rel_dir, session_id, kind, file_name, topic, "
        "archived_at, parent_session, version, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING transcript_id",
        new.agent_id,
        new.rel_dir,
        _text((header.id if header and header.id else None) or new.session_id),
        new.kind,
        new.file_name,
        new.topic,
        new.archived_at,
        _text(header.parent_session if header is not None else None),
        header.version if header is not None else None,
        now_iso(),
    )
    if new.supersedes is not None:
        await conn.execute(
            "UPDATE transcripts SET superseded_by = $1 WHERE transcript_id = $2",
            tid,
            new.supersedes,
        )
    return tid


async def _check(conn: Connection, where: Continuation) -> None:
    row = await conn.fetchrow(
        "SELECT line_count, source_size, byte_size, superseded_by FROM transcripts "
        "WHERE transcript_id = $1 FOR UPDATE",
        where.transcript_id,
    )
    if (
        row is None
        or row[3] is not None
        or (row[0], row[1], row[2]) != (where.line_count, where.source_size, where.source_size)
    ):
        raise ImportFailedError(
            f"{where.file_name}: the stored transcript changed while it was being imported "
            "(an API append or another import); run the import again"
        )


async def _drop_last_line(conn: Connection, transcript_id: int) -> None:
    """`rows._drop_last_line`: forget an unterminated last line, bump the generation."""
    dropped = await conn.fetchrow(
        "DELETE FROM transcript_lines WHERE transcript_id = $1 AND pos = (SELECT max(pos) "
        "FROM transcript_lines WHERE transcript_id = $1) RETURNING kind, byte_size",
        transcript_id,
    )
    assert dropped is not None  # the caller saw this line
    kind, size = dropped  # its idempotency key, if it had one, goes with it (foreign key)
    leaf = await conn.fetchrow(
        "SELECT pos, entry_id FROM transcript_lines WHERE transcript_id = $1 AND kind = 'entry' "
        "ORDER BY pos DESC LIMIT 1",
        transcript_id,
    )
    await conn.execute(
        "UPDATE transcripts SET line_count = line_count - 1, "
        "entry_count = entry_count - $1, damaged_count = damaged_count - $2, "
        "byte_size = byte_size - $3, source_size = source_size - $3, ends_with_newline = 1, "
        "leaf_pos = $4, leaf_id = $5, generation = generation + 1 WHERE transcript_id = $6",
        int(kind == "entry"),
        int(kind == "damaged"),
        size,
        None if leaf is None else leaf[0],
        None if leaf is None else leaf[1],
        transcript_id,
    )


def _text(value: str | None) -> str | None:
    """A string PostgreSQL's text holds, else None (extracted columns only)."""
    return None if value is None or "\x00" in value else value


def line_records(transcript_id: int, chunk: LineChunk) -> Iterable[tuple[Any, ...]]:
    """The chunk's rows as `transcript_lines` records for COPY (`_LINE_COLUMNS`)."""
    blobs = set(chunk.blobs)
    for i, row in enumerate(chunk.rows):
        pos, raw = row[0], row[1]
        if isinstance(raw, SpooledLine):  # COPY binds whole values: read it back whole
            raw = raw.whole()
        if i in blobs or b"\x00" in raw:
            text, data = None, raw
        else:
            text, data = raw.decode("utf-8"), None
        fields = row[3:10]
        if _NUL_ESCAPE in raw:
            fields = tuple(_text(f) if isinstance(f, str) else f for f in fields)
        yield (transcript_id, pos, text, data, row[2], *fields, row[10], row[11], row[12])


async def _insert_chunk(conn: Connection, transcript_id: int, chunk: LineChunk) -> None:
    """`rows._insert_chunk` on PostgreSQL: one COPY of the lines, one statement for the
    parents found only in the database, one for the idempotency keys, one for the counters."""
    rows = chunk.rows
    if rows:
        await conn.copy_records_to_table(
            "transcript_lines", records=line_records(transcript_id, chunk), columns=_LINE_COLUMNS
        )
        if chunk.lookups:
            await conn.execute(
                "UPDATE transcript_lines t SET parent_pos = (SELECT max(p.pos) "
                "FROM transcript_lines p WHERE p.transcript_id = $1 AND p.entry_id = u.parent_id "
                "AND p.kind = 'entry' AND p.pos < u.pos) "
                "FROM unnest($2::text[], $3::bigint[]) AS u(parent_id, pos) "
                "WHERE t.transcript_id = $1 AND t.pos = u.pos",
                transcript_id,
                [_text(rows[i][PARENT_ID]) for i in chunk.lookups],
                [rows[i][0] for i in chunk.lookups],
            )
        keys = [(r[9], r[0]) for r in rows if r[9] is not None and "\x00" not in r[9]]
        if keys:
            # The first occurrence of a key holds it (imported files may repeat one).
            await conn.execute(
                "INSERT INTO idempotency_keys (transcript_id, key, pos) "
                "SELECT $1, k, min(p) FROM unnest($2::text[], $3::bigint[]) AS u(k, p) "
                "GROUP BY k ON CONFLICT DO NOTHING",
                transcript_id,
                [k for k, _ in keys],
                [p for _, p in keys],
            )
        await _count_lines(conn, transcript_id, chunk)
    if chunk.sha256 is not None:
        await conn.execute(
            "UPDATE transcripts SET source_size = $1, source_sha256 = $2 WHERE transcript_id = $3",
            chunk.end_offset,
            chunk.sha256,
            transcript_id,
        )


async def _count_lines(conn: Connection, transcript_id: int, chunk: LineChunk) -> None:
    """`rows._count_lines`: counters and leaf past the chunk's lines."""
    leaf_pos, leaf_id = chunk.leaf if chunk.leaf is not None else (None, None)
    lines = len(chunk.rows)
    await conn.execute(
        "UPDATE transcripts SET line_count = line_count + $1, entry_count = entry_count + $2, "
        "damaged_count = damaged_count + $3, "
        "byte_size = byte_size + $4 + (CASE WHEN ends_with_newline <> 0 OR line_count = 0 "
        "THEN 0 ELSE 1 END) - $5, ends_with_newline = $6, "
        "leaf_pos = coalesce($7, leaf_pos), "
        "leaf_id = CASE WHEN $7::bigint IS NULL THEN leaf_id ELSE $8 END "
        "WHERE transcript_id = $9",
        lines,
        chunk.entries,
        chunk.damaged,
        chunk.line_bytes + lines,
        0 if chunk.ends_with_newline else 1,
        int(chunk.ends_with_newline),
        leaf_pos,
        _text(leaf_id),
        transcript_id,
    )


async def write_chunk(
    conn: Connection, target: NewTranscript | Continuation, chunk: LineChunk
) -> int:
    """`rows.write_chunk`: one chunk in one transaction; returns the transcript id."""
    if isinstance(target, NewTranscript):
        tid = await _create(conn, target, chunk)
    else:
        tid = target.transcript_id
        await _check(conn, target)
        if target.redo_last_line:
            await _drop_last_line(conn, tid)
        if chunk.header is not None:
            h = chunk.header
            await conn.execute(
                "UPDATE transcripts SET session_id = coalesce($1, session_id), version = $2, "
                "parent_session = $3 WHERE transcript_id = $4",
                _text(h.id),
                h.version,
                _text(h.parent_session),
                tid,
            )
    await _insert_chunk(conn, tid, chunk)
    return tid


# --- whole files: compressed archives, archives from a database -------------------------------


async def _bytea_pieces(
    conn: Connection, src: BinaryIO, first: Callable[[bytes], Awaitable[int]], append: str
) -> tuple[int, int, str]:
    """Store `src`'s bytes: `first(piece)` writes the first piece and returns the row's key,
    `append` ($1 the piece, $2 the key) adds each next one. Returns (key, size, sha256)."""
    hasher = hashlib.sha256()
    piece = src.read(BYTEA_PIECE)
    key = await first(piece)
    size = 0
    while piece:
        hasher.update(piece)
        size += len(piece)
        piece = src.read(BYTEA_PIECE)
        if piece:
            await conn.execute(append, piece, key)
    return key, size, hasher.hexdigest()


async def import_compressed(
    conn: Connection, new: NewTranscript, source: Opener, stats: LineStats
) -> int:
    """`rows.import_compressed`: the lines for queries, the original bytes for export."""
    with source() as raw:
        return await _import_compressed(conn, new, raw, source, stats)


async def import_compressed_bytes(
    conn: Connection, new: NewTranscript, data: bytes, stats: LineStats
) -> int:
    return await _import_compressed(conn, new, io.BytesIO(data), lambda: io.BytesIO(data), stats)


async def _import_compressed(
    conn: Connection, new: NewTranscript, raw: BinaryIO, reopen: Opener, stats: LineStats
) -> int:
    lines = ZstdStream(reopen(), new.file_name)
    try:
        chunker = LineChunker(lines, stats=stats)
        first = chunker.next_chunk()
        tid = await _create(conn, new, first)
        chunk = first
        while chunk is not None:
            await _insert_chunk(conn, tid, chunk)
            chunk = chunker.next_chunk()
    finally:
        lines.close()

    async def first_piece(piece: bytes) -> int:
        await conn.execute(
            "UPDATE transcripts SET compressed_bytes = $1 WHERE transcript_id = $2", piece, tid
        )
        return tid

    _, size, sha = await _bytea_pieces(
        conn,
        raw,
        first_piece,
        "UPDATE transcripts SET compressed_bytes = compressed_bytes || $1 WHERE transcript_id = $2",
    )
    await conn.execute(
        "UPDATE transcripts SET source_size = $1, source_sha256 = $2 WHERE transcript_id = $3",
        size,
        sha,
        tid,
    )
    return tid


async def import_whole(conn: Connection, new: NewTranscript, data: bytes, stats: LineStats) -> int:
    """`rows.import_whole`: a whole transcript file held in memory, hashed as one."""
    chunker = LineChunker(io.BytesIO(data), hasher=hashlib.sha256(), stats=stats)
    target: NewTranscript | Continuation = new
    tid = 0
    for chunk in chunker:
        tid = await write_chunk(conn, target, chunk)
        next_pos = chunk.next_pos if chunk.next_pos is not None else 0
        target = Continuation(tid, next_pos, chunk.end_offset, new.file_name)
    return tid


# --- opaque files ----------------------------------------------------------------------------


async def opaque_sha256(conn: Connection, agent_id: str, rel_dir: str, name: str) -> str | None:
    sha: str | None = await conn.fetchval(
        "SELECT sha256 FROM opaque_files WHERE agent_id = $1 AND rel_dir = $2 AND file_name = $3",
        agent_id,
        rel_dir,
        name,
    )
    return sha


async def store_opaque(
    conn: Connection,
    agent_id: str,
    rel_dir: str,
    name: str,
    kind: str,
    source: bytes | Opener,
) -> tuple[int, str]:
    """`rows.store_opaque`: a file's exact bytes, inserted or replaced, in pieces. `source`
    is the bytes already read, or a function opening the file (never through a symlink)."""
    opener: Opener = (lambda: io.BytesIO(source)) if isinstance(source, bytes) else source

    async def first_piece(piece: bytes) -> int:
        file_pk: int = await conn.fetchval(
            "INSERT INTO opaque_files (agent_id, rel_dir, file_name, kind, content, sha256, "
            "imported_at) VALUES ($1, $2, $3, $4, $5, '', $6) "
            "ON CONFLICT (agent_id, rel_dir, file_name) DO UPDATE SET kind = excluded.kind, "
            "content = excluded.content, imported_at = excluded.imported_at "
            "RETURNING file_pk",
            agent_id,
            rel_dir,
            name,
            kind,
            piece,
            now_iso(),
        )
        return file_pk

    with opener() as src:
        file_pk, size, sha = await _bytea_pieces(
            conn,
            src,
            first_piece,
            "UPDATE opaque_files SET content = content || $1 WHERE file_pk = $2",
        )
    await conn.execute("UPDATE opaque_files SET sha256 = $1 WHERE file_pk = $2", sha, file_pk)
    return size, sha


# --- sessions.json ---------------------------------------------------------------------------


async def stored_index(conn: Connection, agent_id: str) -> tuple[str, str, str | None] | None:
    row = await conn.fetchrow(
        "SELECT rel_dir, source_state, source_sha256 FROM session_indexes WHERE agent_id = $1",
        agent_id,
    )
    return None if row is None else (row[0], row[1], row[2])


_ENTRY_COLUMNS = ("agent_id", "session_key", "position", "entry_json", "problem", *COLUMN_NAMES)


async def insert_imported_entries(
    conn: Connection,
    agent_id: str,
    entries: Iterable[tuple[str, int, str, Any, str | None]],
) -> int:
    """`sessions.rows.insert_imported_entries` as one COPY: (key, position, text, value,
    problem) rows; the index's `next_position` moves past them."""
    records = []
    last_position = -1
    for key, position, text, value, problem in entries:
        last_position = max(last_position, position)
        columns = entry_columns(value, text)
        records.append(
            (agent_id, key, position, text, problem, *(_column(columns[n]) for n in COLUMN_NAMES))
        )
    if records:
        await conn.copy_records_to_table("session_entries", records=records, columns=_ENTRY_COLUMNS)
    await conn.execute(
        "UPDATE session_indexes SET next_position = GREATEST(next_position, $1) "
        "WHERE agent_id = $2",
        last_position + 1,
        agent_id,
    )
    return len(records)


def _column(value: Any) -> Any:
    """An extracted entry column as PostgreSQL binds it: a float by its shortest decimal
    spelling (the number columns are `numeric`, which keeps it exactly), text without NUL."""
    if value.__class__ is float:
        return Decimal(repr(value))
    return _text(value) if isinstance(value, str) else value


async def import_index(conn: Connection, src: IndexSource) -> IndexOutcome:
    """`session_index.import_index`: the file's exact bytes and its entries."""
    await conn.execute("SELECT 1 FROM session_indexes WHERE agent_id = $1 FOR UPDATE", src.agent_id)
    outcome = decide_index(await stored_index(conn, src.agent_id), src)
    if outcome.status not in ("imported", "new_version"):
        return outcome
    entries = src.parsed.entries if src.parsed is not None else []
    await conn.execute("DELETE FROM session_entries WHERE agent_id = $1", src.agent_id)
    await conn.execute("DELETE FROM session_directories WHERE agent_id = $1", src.agent_id)
    await conn.execute(
        "INSERT INTO session_indexes (agent_id, rel_dir, source_bytes, source_state, "
        "source_error, source_sha256, revision, next_position) "
        "VALUES ($1, $2, $3, $4, $5, $6, 0, $7) "
        "ON CONFLICT (agent_id) DO UPDATE SET rel_dir = excluded.rel_dir, "
        "source_bytes = excluded.source_bytes, source_state = excluded.source_state, "
        "source_error = excluded.source_error, source_sha256 = excluded.source_sha256, "
        "revision = session_indexes.revision + 1, next_position = excluded.next_position",
        src.agent_id,
        src.rel_dir,
        src.data,
        src.state,
        _text(src.error),
        src.sha256,
        len(entries),
    )
    await insert_imported_entries(
        conn,
        src.agent_id,
        ((e.key, e.position, entry_text(e.value), e.value, e.problem) for e in entries),
    )
    return outcome


# --- sessions.d ------------------------------------------------------------------------------


async def known_files(conn: Connection, agent_id: str) -> dict[str, tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT file_name, file_sha256, session_key FROM session_entry_files WHERE agent_id = $1",
        agent_id,
    )
    return {name: (sha, key) for name, sha, key in rows}


async def read_directory_state(conn: Connection, agent_id: str) -> DirectoryState:
    """`session_directory.read_state` on PostgreSQL."""
    index = await stored_index(conn, agent_id)
    directory = await conn.fetchval(
        "SELECT 1 FROM session_directories WHERE agent_id = $1", agent_id
    )
    state = DirectoryState(index, directory is not None)
    if not needs_entries(state.index, state.is_directory):
        return state
    files = await conn.fetch(
        "SELECT file_name, session_key, file_sha256, entry_sha256 FROM session_entry_files "
        "WHERE agent_id = $1",
        agent_id,
    )
    state.files = {name: StoredFile(key, f_sha, e_sha) for name, key, f_sha, e_sha in files}
    entries = await conn.fetch(
        "SELECT session_key, entry_json FROM session_entries WHERE agent_id = $1", agent_id
    )
    state.current = {key: entry_sha256(text) for key, text in entries}
    return state


async def import_directory(conn: Connection, src: DirectorySource, write: bool) -> DirectoryOutcome:
    """`session_directory.import_directory` on PostgreSQL."""
    if write:
        await conn.execute(
            "SELECT 1 FROM session_indexes WHERE agent_id = $1 FOR UPDATE", src.agent_id
        )
    plan = plan_directory(src, await read_directory_state(conn, src.agent_id))
    if write:
        await _apply_directory(conn, src, plan)
    return plan.outcome


async def _apply_directory(conn: Connection, src: DirectorySource, plan: DirectoryPlan) -> None:
    if plan.action == "archive":
        await store_opaque(
            conn,
            src.agent_id,
            src.rel_dir,
            dir_file_name("", STATE_FILE),
            ARCHIVE_KIND,
            src.parsed.state_bytes,  # read once, through the tree: never reopened by path
        )
        for f in src.parsed.files:
            name = dir_file_name(f"{ENTRIES_DIR}/", f.name)
            await store_opaque(conn, src.agent_id, src.rel_dir, name, ARCHIVE_KIND, f.data)
    elif plan.action == "replace":
        await _replace_directory(conn, src, plan.accepted)
    elif plan.action == "update":
        await _update_directory(conn, src, plan)
    if plan.store_ignored:
        await _store_ignored(conn, src)


async def _replace_directory(
    conn: Connection, src: DirectorySource, accepted: list[EntryFile]
) -> None:
    agent = src.agent_id
    await conn.execute("DELETE FROM session_entries WHERE agent_id = $1", agent)
    await conn.execute("DELETE FROM session_directories WHERE agent_id = $1", agent)
    await conn.execute(
        "INSERT INTO session_indexes (agent_id, rel_dir, source_bytes, source_state, "
        "source_error, source_sha256, revision, next_position) "
        "VALUES ($1, $2, $3, 'imported', NULL, $4, 0, 0) "
        "ON CONFLICT (agent_id) DO UPDATE SET rel_dir = excluded.rel_dir, "
        "source_bytes = excluded.source_bytes, source_state = 'imported', source_error = NULL, "
        "source_sha256 = excluded.source_sha256, revision = session_indexes.revision + 1, "
        "next_position = 0",
        agent,
        src.rel_dir,
        src.parsed.state_bytes,
        src.state_sha256,
    )
    await conn.execute(
        "INSERT INTO session_directories (agent_id, state_version) VALUES ($1, $2)",
        agent,
        src.parsed.state.version,
    )
    await insert_imported_entries(
        conn,
        agent,
        ((f.key, n, f.text, f.value, f.problem) for n, f in enumerate(accepted) if f.key),
    )
    await _store_file_rows(conn, src, accepted)


async def _store_file_rows(conn: Connection, src: DirectorySource, files: list[EntryFile]) -> None:
    if not files:
        return
    await conn.execute(
        "INSERT INTO session_entry_files (agent_id, file_name, session_key, file_sha256, "
        "entry_sha256, content) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], "
        "$5::text[], $6::bytea[]) "
        "ON CONFLICT (agent_id, file_name) DO UPDATE SET session_key = excluded.session_key, "
        "file_sha256 = excluded.file_sha256, entry_sha256 = excluded.entry_sha256, "
        "content = excluded.content",
        src.agent_id,
        [f.name for f in files],
        [f.key for f in files],
        [f.sha256 for f in files],
        [entry_sha256(f.text) for f in files],
        [None if f.canonical else f.data for f in files],
    )
    # The files are the index's now: copies kept as opaque files before would be written twice.
    await conn.execute(
        "DELETE FROM opaque_files WHERE agent_id = $1 AND rel_dir = $2 AND file_name = ANY($3)",
        src.agent_id,
        src.rel_dir,
        [dir_file_name(f"{ENTRIES_DIR}/", f.name) for f in files],
    )


async def _store_ignored(conn: Connection, src: DirectorySource) -> None:
    """`session_directory._store_ignored` on PostgreSQL."""
    agent, rel_dir = src.agent_id, src.rel_dir
    await conn.execute(
        "DELETE FROM opaque_files WHERE agent_id = $1 AND rel_dir = $2 AND file_name = $3",
        agent,
        rel_dir,
        dir_file_name("", STATE_FILE),
    )
    names = []
    for f in src.parsed.files:
        if f.key is None:
            names.append(dir_file_name(f"{ENTRIES_DIR}/", f.name))
            if await opaque_sha256(conn, agent, rel_dir, names[-1]) != f.sha256:
                await store_opaque(conn, agent, rel_dir, names[-1], IGNORED_KIND, f.data)
    await conn.execute(
        "DELETE FROM opaque_files WHERE agent_id = $1 AND rel_dir = $2 AND kind = $3 "
        "AND NOT (file_name = ANY($4::text[]))",
        agent,
        rel_dir,
        IGNORED_KIND,
        names,
    )


async def _update_directory(conn: Connection, src: DirectorySource, plan: DirectoryPlan) -> None:
    agent = src.agent_id
    for f in plan.apply:
        assert f.key is not None
        await replace_imported_entry(conn, agent, f.key, f.text, f.value, f.problem)
    await _store_file_rows(conn, src, plan.apply)
    gone_keys = [key for _, key in plan.gone if key is not None]
    if gone_keys:
        await conn.execute(
            "DELETE FROM session_entries WHERE agent_id = $1 AND session_key = ANY($2::text[])",
            agent,
            gone_keys,
        )
    if plan.gone:
        await conn.execute(
            "DELETE FROM session_entry_files WHERE agent_id = $1 AND file_name = ANY($2::text[])",
            agent,
            [name for name, _ in plan.gone],
        )
    await conn.execute(
        "UPDATE session_directories SET state_version = GREATEST(state_version, $1) "
        "WHERE agent_id = $2",
        src.parsed.state.version,
        agent,
    )
    await conn.execute(
        "UPDATE session_indexes SET source_sha256 = $1, revision = revision + 1, "
        "source_bytes = CASE WHEN source_state = 'api' THEN NULL ELSE $2::bytea END "
        "WHERE agent_id = $3",
        src.state_sha256,
        src.parsed.state_bytes,
        agent,
    )


async def replace_imported_entry(
    conn: Connection, agent_id: str, key: str, text: str, value: Any, problem: str | None
) -> None:
    """`sessions.rows.replace_imported_entry`: replaced in place (keeping its position), or
    added after every other key; the index is not marked as changed."""
    columns = entry_columns(value, text)
    names = list(COLUMN_NAMES)
    values = [_column(columns[n]) for n in names]
    assignments = ", ".join(f"{name} = ${i + 5}" for i, name in enumerate(names))
    updated = await conn.execute(
        f"UPDATE session_entries SET entry_json = $3, problem = $4, {assignments} "
        "WHERE agent_id = $1 AND session_key = $2",
        agent_id,
        key,
        text,
        problem,
        *values,
    )
    if updated.endswith(" 0"):
        position = await conn.fetchval(
            "UPDATE session_indexes SET next_position = next_position + 1 "
            "WHERE agent_id = $1 RETURNING next_position - 1",
            agent_id,
        )
        await conn.copy_records_to_table(
            "session_entries",
            records=[(agent_id, key, position, text, problem, *values)],
            columns=_ENTRY_COLUMNS,
        )


# --- OpenClaw's agent database ---------------------------------------------------------------


async def stored_with_origin(
    conn: Connection, agent_id: str, rel_dir: str, file_name: str
) -> tuple[StoredSource | None, origin_db.Origin | None]:
    stored = await current_transcript(conn, agent_id, rel_dir, file_name)
    if stored is None:
        return None, None
    row = await conn.fetchrow(
        "SELECT source, generation, last_seq, event_count, base_created_at, last_event_sha256, "
        "source_sha256 FROM database_transcripts WHERE transcript_id = $1",
        stored.transcript_id,
    )
    return stored, None if row is None else origin_db.Origin(*row)


async def record_origin(
    conn: Connection, transcript_id: int, agent_id: str, session_id: str, origin: origin_db.Origin
) -> None:
    await conn.execute(
        "INSERT INTO database_transcripts (transcript_id, agent_id, session_id, source, "
        "generation, last_seq, event_count, base_created_at, last_event_sha256, source_sha256) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (transcript_id) DO UPDATE "
        "SET source = excluded.source, generation = excluded.generation, "
        "last_seq = excluded.last_seq, event_count = excluded.event_count, "
        "base_created_at = excluded.base_created_at, "
        "last_event_sha256 = excluded.last_event_sha256, source_sha256 = excluded.source_sha256",
        *origin.row(transcript_id, agent_id, session_id),
    )


async def write_events_chunk(
    conn: Connection,
    target: NewTranscript | Continuation,
    chunk: LineChunk,
    update: origin_db.OriginUpdate,
) -> tuple[int, int]:
    """`database_rows.write_events_chunk`: a chunk of events and how far the import read."""
    tid = await write_chunk(conn, target, chunk)
    size: int = await conn.fetchval(
        "UPDATE transcripts SET source_size = byte_size, source_sha256 = NULL "
        "WHERE transcript_id = $1 RETURNING byte_size",
        tid,
    )
    origin = origin_db.origin_after(chunk, update)
    if origin is not None:
        await record_origin(conn, tid, update.agent_id, update.session_id, origin)
    return tid, int(size)


async def record_database(
    conn: Connection, agent_id: str, rel_path: str, schema_version: int, app_version: str | None
) -> None:
    await conn.execute(
        "INSERT INTO agent_databases (agent_id, rel_path, schema_version, app_version, "
        "imported_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent_id) DO UPDATE SET "
        "rel_path = excluded.rel_path, schema_version = excluded.schema_version, "
        "app_version = excluded.app_version, imported_at = excluded.imported_at",
        agent_id,
        rel_path,
        schema_version,
        app_version,
        now_iso(),
    )


async def store_archived(
    conn: Connection, agent_id: str, rel_dir: str, file: TreeFile, what: ArchivedFile
) -> None:
    """A file of OpenClaw's migration archive: its bytes (opened through the tree) and the
    name it had before."""
    name = file.parts[-1]
    await store_opaque(conn, agent_id, rel_dir, name, "pre_migration", file.open)
    await conn.execute(
        "INSERT INTO pre_migration_files (file_pk, original_name, role, session_id) "
        "SELECT file_pk, $4, $5, $6 FROM opaque_files "
        "WHERE agent_id = $1 AND rel_dir = $2 AND file_name = $3 "
        "ON CONFLICT (file_pk) DO UPDATE SET original_name = excluded.original_name, "
        "role = excluded.role, session_id = excluded.session_id",
        agent_id,
        rel_dir,
        name,
        what.original_name,
        what.role,
        what.session_id,
    )
