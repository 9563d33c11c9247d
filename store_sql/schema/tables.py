"""The database schema: SQLAlchemy Core tables, the single source of truth for Alembic.

Every table and column carries a comment; docs/SCHEMA.md explains them with example queries,
and tests/test_schema_doc.py fails when the two disagree. Things SQLAlchemy Core cannot
express (the full-text index, its triggers and the maintainer views) are SQL text in
`schema/extra_sql.py`, created by the same migration.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from store_sql.schema.navigation_lines import NAVIGATION_LINES as NAVIGATION_LINES
from store_sql.schema.navigation_lines import SIDE_APPEND_MARK as SIDE_APPEND_MARK
from store_sql.schema.navigation_lines import side_append as side_append
from store_sql.schema.revision import APPLICATION_ID as APPLICATION_ID
from store_sql.schema.revision import SCHEMA_REVISION as SCHEMA_REVISION

metadata = MetaData()

BigInt = Integer().with_variant(BigInteger(), "postgresql")
"""Every integer column: SQLite's INTEGER already holds 64 bits (epoch ms, byte counts, row
ids); PostgreSQL's `integer` holds 32, so there it is `bigint` (`bigserial` for row ids)."""

JsNumber = Integer().with_variant(Numeric(), "postgresql")
"""A number copied from an entry's JSON (updatedAt, token counts): an integer or a float
as the entry has it. SQLite's INTEGER column keeps either; on PostgreSQL `numeric` keeps
both exactly (the PostgreSQL twins bind floats by their shortest decimal spelling)."""

# Lines are stored as TEXT when valid UTF-8 (so json_extract works on them) and as BLOB when
# not (so their bytes survive exactly). A column declared BLOB has no type affinity in SQLite,
# so it keeps each value's own type. PostgreSQL's columns have one type each: there `line` is
# `text` and the bytes of the other lines go into `line_bytes` (schema/pg_sql.py adds it).
_TEXT_OR_BLOB = LargeBinary().with_variant(Text(), "postgresql")

session_indexes = Table(
    "session_indexes",
    metadata,
    Column("agent_id", Text, primary_key=True, comment="agent id, lowercase ('main')"),
    Column(
        "rel_dir",
        Text,
        nullable=False,
        comment="sessions directory relative to the state dir: agents/<id>/sessions or sessions",
    ),
    Column(
        "source_bytes",
        LargeBinary,
        comment="the index file exactly as imported (sessions.json, or sessions.d/state.json "
        "for a directory index); NULL once the index changed through the API",
    ),
    Column(
        "source_state",
        Text,
        nullable=False,
        server_default=text("'api'"),
        comment="api | imported | empty_file | invalid: how the index came to be",
    ),
    Column("source_error", Text, comment="why an imported sessions.json was invalid"),
    Column(
        "source_sha256",
        Text,
        comment="sha256 of the sessions.json last imported; kept after API changes so a "
        "re-import can tell that same file (unchanged) from a changed one (a conflict)",
    ),
    Column(
        "revision",
        BigInt,
        nullable=False,
        server_default=text("0"),
        comment="bumped by every import of this agent's sessions.json",
    ),
    Column(
        "next_position",
        BigInt,
        nullable=False,
        server_default=text("0"),
        comment="position the next new session key gets (keys keep insertion order)",
    ),
    CheckConstraint(
        "source_state IN ('api', 'imported', 'empty_file', 'invalid')", name="source_state_known"
    ),
    comment="one row per agent: the sessions.json of that agent",
)

session_entries = Table(
    "session_entries",
    metadata,
    Column("entry_pk", BigInt, primary_key=True, comment="row id"),
    Column(
        "agent_id",
        Text,
        ForeignKey("session_indexes.agent_id", ondelete="CASCADE"),
        nullable=False,
        comment="agent id",
    ),
    Column("session_key", Text, nullable=False, comment="session key, opaque ('agent:main:main')"),
    Column(
        "position",
        BigInt,
        nullable=False,
        comment="insertion order in sessions.json (JS puts integer-like keys first on export)",
    ),
    Column(
        "entry_json",
        Text,
        nullable=False,
        comment="the entry's JSON text exactly as sessions.json holds it (2-space, depth 1)",
    ),
    Column("session_id", Text, comment="entry.sessionId (NULL only for invalid imported entries)"),
    Column("updated_at", JsNumber, comment="entry.updatedAt, epoch milliseconds"),
    Column("session_started_at", JsNumber, comment="entry.sessionStartedAt, epoch ms"),
    Column("last_interaction_at", JsNumber, comment="entry.lastInteractionAt, epoch ms"),
    Column("chat_type", Text, comment="entry.chatType (direct, group, channel, ...)"),
    Column("channel", Text, comment="entry.channel, else entry.deliveryContext.channel"),
    Column("label", Text, comment="entry.label"),
    Column("display_name", Text, comment="entry.displayName"),
    Column("model_provider", Text, comment="entry.modelProvider"),
    Column("model", Text, comment="entry.model"),
    Column("status", Text, comment="entry.status"),
    Column("archived_at", JsNumber, comment="entry.archivedAt"),
    Column("session_file", Text, comment="entry.sessionFile"),
    Column("spawned_by", Text, comment="entry.spawnedBy"),
    Column("input_tokens", JsNumber, comment="entry.inputTokens"),
    Column("output_tokens", JsNumber, comment="entry.outputTokens"),
    Column("total_tokens", JsNumber, comment="entry.totalTokens"),
    Column("context_tokens", JsNumber, comment="entry.contextTokens"),
    Column("compaction_count", JsNumber, comment="entry.compactionCount"),
    Column("entry_bytes", BigInt, nullable=False, comment="UTF-8 size of entry_json"),
    Column("problem", Text, comment="why an imported entry is invalid; NULL when valid"),
    UniqueConstraint("agent_id", "session_key", name="uq_session_entries_key"),
    Index("ix_session_entries_updated", "agent_id", "updated_at"),
    Index("ix_session_entries_session_id", "agent_id", "session_id"),
    Index("ix_session_entries_label", "agent_id", "label"),
    Index("ix_session_entries_chat_type", "agent_id", "chat_type"),
    Index("ix_session_entries_channel", "agent_id", "channel"),
    comment="one row per session key: the entry text plus indexed columns extracted from it",
)

session_directories = Table(
    "session_directories",
    metadata,
    Column(
        "agent_id",
        Text,
        ForeignKey("session_indexes.agent_id", ondelete="CASCADE"),
        primary_key=True,
        comment="agent whose index was imported from a sessions.d directory",
    ),
    Column(
        "state_version",
        BigInt,
        nullable=False,
        comment="highest state.json version imported; an export after changes writes more",
    ),
    comment="one row per agent whose index is a sessions.d (docs/FORMATS.md section 7)",
)

session_entry_files = Table(
    "session_entry_files",
    metadata,
    Column("file_pk", BigInt, primary_key=True, comment="row id"),
    Column(
        "agent_id",
        Text,
        ForeignKey("session_directories.agent_id", ondelete="CASCADE"),
        nullable=False,
        comment="agent id",
    ),
    Column("file_name", Text, nullable=False, comment="file name inside sessions.d/entries"),
    Column("session_key", Text, nullable=False, comment="the session key the file holds"),
    Column(
        "file_sha256",
        Text,
        nullable=False,
        comment="sha256 of the file as imported: a re-import skips files that did not change",
    ),
    Column(
        "entry_sha256",
        Text,
        nullable=False,
        comment="sha256 of session_entries.entry_json as imported: differs once the API "
        "changed the entry",
    ),
    Column(
        "content",
        LargeBinary,
        comment="the file's exact bytes when they are not what the gateway writes for the "
        "entry (bare entries, other layouts); NULL when the rendering reproduces them",
    ),
    UniqueConstraint("agent_id", "file_name", name="uq_session_entry_files_name"),
    UniqueConstraint("agent_id", "session_key", name="uq_session_entry_files_key"),
    comment="one row per imported sessions.d entry file: how to write it back byte for byte",
)

transcripts = Table(
    "transcripts",
    metadata,
    Column("transcript_id", BigInt, primary_key=True, comment="row id; identity of a transcript"),
    Column("agent_id", Text, nullable=False, comment="agent id"),
    Column("rel_dir", Text, nullable=False, comment="sessions directory, as in session_indexes"),
    Column("session_id", Text, comment="header id (or the id in the file name)"),
    Column(
        "kind",
        Text,
        nullable=False,
        comment="live | topic | fork | checkpoint | reset | deleted | other",
    ),
    Column("file_name", Text, nullable=False, comment="file name inside the sessions directory"),
    Column("topic", Text, comment="topic id of a topic transcript"),
    Column("archived_at", Text, comment="time stamp of a reset/deleted archive, as in its name"),
    Column("parent_session", Text, comment="header parentSession (v1: branchedFrom)"),
    Column("version", BigInt, comment="header version; 1 for legacy files without one"),
    Column("leaf_pos", BigInt, comment="position of the leaf entry (last entry in file order)"),
    Column("leaf_id", Text, comment="id of the leaf entry (NULL for v1 transcripts)"),
    Column("line_count", BigInt, nullable=False, server_default=text("0")),
    Column("entry_count", BigInt, nullable=False, server_default=text("0")),
    Column("byte_size", BigInt, nullable=False, server_default=text("0")),
    Column("damaged_count", BigInt, nullable=False, server_default=text("0")),
    Column(
        "ends_with_newline",
        BigInt,
        nullable=False,
        server_default=text("1"),
        comment="1 when the file ends with \\n (export reproduces a missing final newline)",
    ),
    Column(
        "source_size",
        BigInt,
        comment="bytes of the source file imported so far (byte_size also counts API appends)",
    ),
    Column(
        "source_sha256",
        Text,
        comment="sha256 of the first source_size bytes of the source: a grown file is tailed",
    ),
    Column("compressed_bytes", LargeBinary, comment="original .zst bytes of a compressed archive"),
    Column("created_at", Text, nullable=False, comment="ISO time the row was created"),
    Column(
        "superseded_by",
        BigInt,
        ForeignKey("transcripts.transcript_id", ondelete="SET NULL"),
        comment="newer version of the same file (changed on disk, or migrated); NULL = current",
    ),
    Column(
        "generation",
        BigInt,
        nullable=False,
        server_default=text("1"),
        comment="bumped when the content is replaced rather than appended to",
    ),
    CheckConstraint(
        "kind IN ('live', 'topic', 'fork', 'checkpoint', 'reset', 'deleted', 'other')",
        name="transcript_kind_known",
    ),
    Index("ix_transcripts_session", "agent_id", "session_id", "kind"),
    Index("ix_transcripts_file", "agent_id", "rel_dir", "file_name"),
    comment="one row per transcript file (live, archives, snapshots, forks) and per version",
)

transcript_lines = Table(
    "transcript_lines",
    metadata,
    Column("line_pk", BigInt, primary_key=True, comment="row id (also the full-text rowid)"),
    Column(
        "transcript_id",
        BigInt,
        ForeignKey("transcripts.transcript_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("pos", BigInt, nullable=False, comment="0-based line number; the header is 0"),
    Column(
        "line",
        _TEXT_OR_BLOB,
        nullable=False,
        comment="the line's exact bytes without its \\n: TEXT when valid UTF-8, else BLOB",
    ),
    Column("kind", Text, nullable=False, comment="header | entry | blank | damaged"),
    Column("entry_id", Text, comment="entry id (8 hex); NULL for v1 entries"),
    Column("parent_id", Text, comment="parentId as written"),
    Column(
        "parent_pos",
        BigInt,
        comment="pos of the parent: nearest preceding entry with that id (v1: previous entry)",
    ),
    Column("type", Text, comment="entry type (message, compaction, label, ...)"),
    Column("role", Text, comment="message.role for message entries"),
    Column("timestamp", Text, comment="entry timestamp (ISO)"),
    Column("idempotency_key", Text, comment="message.idempotencyKey"),
    Column("byte_size", BigInt, nullable=False, comment="size of the line in bytes"),
    Column("damage", Text, comment="why a damaged line could not be read; kept verbatim"),
    Column(
        "side_append",
        BigInt,
        nullable=False,
        server_default=text("0"),
        comment='1 when the line\'s bytes hold "appendMode":"side" (a side append), else 0',
    ),
    UniqueConstraint("transcript_id", "pos", name="uq_transcript_lines_pos"),
    Index("ix_transcript_lines_entry", "transcript_id", "entry_id"),
    Index("ix_transcript_lines_parent", "transcript_id", "parent_pos"),
    Index(
        "ix_transcript_lines_idem",
        "transcript_id",
        "idempotency_key",
        sqlite_where=text("idempotency_key IS NOT NULL"),
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    Index(
        "ix_transcript_lines_navigation",
        "transcript_id",
        "pos",
        sqlite_where=text(NAVIGATION_LINES),
        postgresql_where=text(NAVIGATION_LINES),
    ),
    CheckConstraint("kind IN ('header', 'entry', 'blank', 'damaged')", name="line_kind_known"),
    comment="every line of every transcript, exact bytes plus extracted columns",
)

opaque_files = Table(
    "opaque_files",
    metadata,
    Column("file_pk", BigInt, primary_key=True),
    Column("agent_id", Text, nullable=False, comment="agent id"),
    Column("rel_dir", Text, nullable=False, comment="sessions directory"),
    Column("file_name", Text, nullable=False, comment="path inside the sessions directory"),
    Column(
        "kind", Text, nullable=False, comment="backup | trajectory | skill_prompt | other | ..."
    ),
    Column("content", LargeBinary, nullable=False, comment="the file's exact bytes"),
    Column("sha256", Text, nullable=False),
    Column("imported_at", Text, nullable=False),
    UniqueConstraint("agent_id", "rel_dir", "file_name", name="uq_opaque_files_name"),
    comment="files kept only so export can reproduce the directory (backups, sidecars, blobs)",
)

search_index_state = Table(
    "search_index_state",
    metadata,
    Column("id", BigInt, primary_key=True, comment="always 1: a single row"),
    Column(
        "indexed_upto",
        BigInt,
        nullable=False,
        server_default=text("0"),
        comment="every transcript_lines row with line_pk <= this is in entry_text_fts",
    ),
    CheckConstraint("id = 1", name="search_index_state_single_row"),
    comment="how far the background indexer has brought the full-text index (search/query.py)",
)

checkpoint_snapshots = Table(
    "checkpoint_snapshots",
    metadata,
    Column("snapshot_pk", BigInt, primary_key=True),
    Column("agent_id", Text, nullable=False),
    Column("checkpoint_id", Text, nullable=False, comment="checkpointId in the entry"),
    Column(
        "transcript_id",
        BigInt,
        ForeignKey("transcripts.transcript_id", ondelete="CASCADE"),
        nullable=False,
        comment="transcript the snapshot points into (append-only, so a prefix is stable)",
    ),
    Column("upto_pos", BigInt, nullable=False, comment="last line included in the snapshot"),
    Column("leaf_id", Text, comment="leaf entry id at snapshot time"),
    Column("file_name", Text, nullable=False, comment="<sessionId>.checkpoint.<uuid>.jsonl"),
    Column("created_at", Text, nullable=False),
    Column(
        "session_key",
        Text,
        comment="session key whose compactionCheckpoints names this snapshot (NULL: unknown)",
    ),
    Column(
        "byte_size",
        BigInt,
        comment="bytes of the snapshot file (lines 0..upto_pos); NULL: unknown, sum the lines",
    ),
    Column(
        "ends_with_newline",
        BigInt,
        nullable=False,
        server_default=text("1"),
        comment="0 when the transcript had no final newline when captured, so neither has the file",
    ),
    UniqueConstraint("agent_id", "checkpoint_id", name="uq_checkpoint_snapshots_id"),
    Index("ix_checkpoint_snapshots_file", "agent_id", "file_name"),
    Index("ix_checkpoint_snapshots_transcript", "transcript_id"),
    comment="pre-compaction snapshots as references into transcripts, not copies",
)

agent_databases = Table(
    "agent_databases",
    metadata,
    Column("agent_id", Text, primary_key=True, comment="agent id whose database was read"),
    Column(
        "rel_path",
        Text,
        nullable=False,
        comment="the database relative to the state dir: agents/<id>/agent/openclaw-agent.sqlite",
    ),
    Column("schema_version", BigInt, nullable=False, comment="its PRAGMA user_version"),
    Column("app_version", Text, comment="schema_meta.app_version: the OpenClaw that wrote it"),
    Column("imported_at", Text, nullable=False, comment="ISO time of the last import from it"),
    comment="one row per agent whose session index was read from OpenClaw's SQLite database",
)

database_transcripts = Table(
    "database_transcripts",
    metadata,
    Column(
        "transcript_id",
        BigInt,
        ForeignKey("transcripts.transcript_id", ondelete="CASCADE"),
        primary_key=True,
        comment="the transcript made from the database",
    ),
    Column("agent_id", Text, nullable=False, comment="agent id"),
    Column("session_id", Text, nullable=False, comment="OpenClaw session id"),
    Column(
        "source",
        Text,
        nullable=False,
        comment="events | archive | cold_archive: which table the lines came from",
    ),
    Column("generation", Text, comment="the archive's generation (archives only)"),
    Column("last_seq", BigInt, comment="seq of the last event imported (events only)"),
    Column("event_count", BigInt, nullable=False, comment="events imported"),
    Column(
        "base_created_at",
        BigInt,
        comment="smallest created_at of the events: OpenClaw rewrites every row when it "
        "replaces a transcript, so a different value means a rewritten transcript",
    ),
    Column("last_event_sha256", Text, comment="sha256 of the last event's bytes"),
    Column("source_sha256", Text, comment="sha256 of an archive's bytes as stored there"),
    CheckConstraint(
        "source IN ('events', 'archive', 'cold_archive')", name="database_source_known"
    ),
    Index("ix_database_transcripts_session", "agent_id", "session_id"),
    comment="where a transcript read from OpenClaw's database came from, for re-imports",
)

pre_migration_files = Table(
    "pre_migration_files",
    metadata,
    Column(
        "file_pk",
        BigInt,
        ForeignKey("opaque_files.file_pk", ondelete="CASCADE"),
        primary_key=True,
        comment="the archived file, kept byte for byte in opaque_files",
    ),
    Column(
        "original_name",
        Text,
        comment="its name in the sessions dir before the migration; NULL: not recoverable",
    ),
    Column("role", Text, nullable=False, comment="index | transcript | other"),
    Column("session_id", Text, comment="session id of an archived transcript"),
    CheckConstraint("role IN ('index', 'transcript', 'other')", name="pre_migration_role_known"),
    comment="files OpenClaw moved into session-sqlite-import-archive/ when it migrated to SQLite",
)
