"""Schema objects only PostgreSQL runs: what `tables.py` cannot say in PostgreSQL's terms.

The Alembic revisions run these on PostgreSQL where they run `extra_sql`'s SQLite text
(`op.get_context().dialect.name` picks). Each list belongs to the revision named beside it;
a revision never changes once released, so later schema changes add lists here, used by
new revisions.
"""

from __future__ import annotations

from store_sql.schema import pg_views

# --- 0001: the tables' PostgreSQL details ----------------------------------------------

# A transcript line is `text` when it is valid UTF-8 without NUL (so `->>` reads inside it),
# else its exact bytes go into `line_bytes` and `line` is NULL: PostgreSQL's `text` refuses
# invalid UTF-8 and NUL, and one column cannot hold both types as SQLite's BLOB column does.
# Exactly one of the two is set.
LINE_BYTES_STATEMENTS = [
    "ALTER TABLE transcript_lines ALTER COLUMN line DROP NOT NULL",
    "ALTER TABLE transcript_lines ADD COLUMN line_bytes bytea",
    "COMMENT ON COLUMN transcript_lines.line_bytes IS "
    "'the line''s exact bytes when they are not valid UTF-8 text (then line is NULL)'",
    "ALTER TABLE transcript_lines ADD CONSTRAINT line_text_or_bytes "
    "CHECK ((line IS NULL) <> (line_bytes IS NULL))",
]

# Idempotency keys hold across writer processes through a primary key, not a lookup. The
# key's column on transcript_lines cannot carry the constraint: an imported file may hold
# one key on several lines, kept verbatim. This table holds each key's first line; an append
# stores its key here in the same statement as its line (transcripts/pg_appends.py).
IDEMPOTENCY_KEYS_STATEMENTS = [
    "CREATE TABLE idempotency_keys (transcript_id bigint NOT NULL, key text NOT NULL, "
    "pos bigint NOT NULL, CONSTRAINT pk_idempotency_keys PRIMARY KEY (transcript_id, key), "
    "CONSTRAINT fk_idempotency_keys_line FOREIGN KEY (transcript_id, pos) "
    "REFERENCES transcript_lines (transcript_id, pos) ON DELETE CASCADE)",
    "COMMENT ON TABLE idempotency_keys IS "
    "'the first line of each message.idempotencyKey per transcript (PostgreSQL only)'",
]

# The maintainer views of 0001 in PostgreSQL's words (schema/pg_views.py); its full-text
# index comes with 0006, which on SQLite replaced 0001's.
INITIAL_STATEMENTS: list[str] = [
    *LINE_BYTES_STATEMENTS,
    *IDEMPOTENCY_KEYS_STATEMENTS,
    *pg_views.VIEW_STATEMENTS,
]
INITIAL_DROP_STATEMENTS: list[str] = [
    *pg_views.VIEW_DROP_STATEMENTS,
    "DROP TABLE IF EXISTS idempotency_keys",
]

# --- 0002: the search index's mark -----------------------------------------------------

SEARCH_STATE_STATEMENTS: list[str] = [
    "INSERT INTO search_index_state (id, indexed_upto) "
    "SELECT 1, coalesce(max(line_pk), 0) FROM transcript_lines ON CONFLICT (id) DO NOTHING",
]

# --- 0006: the search index, and the console's read-only role ------------------------

# pg_trgm's GIN index over entry_search_text(line), kept in the transaction that writes a
# line (0008 replaces it with search_text and its background indexer; search_index_state
# stays unused on PostgreSQL); then the role `store-sql sql` reads as, granted SELECT on
# every table, which exists by now.
EXTERNAL_INDEX_STATEMENTS: list[str] = [
    *pg_views.SEARCH_STATEMENTS,
    pg_views.READER_ROLE_GRANTS,
]
EXTERNAL_INDEX_DROP_STATEMENTS: list[str] = [*pg_views.SEARCH_DROP_STATEMENTS]

# --- 0008: the search index off the write path ----------------------------------------

# The trigram index moves from transcript_lines onto `search_text`, filled by the background
# indexer from the `search_pending` queue an insert trigger keeps (schema/pg_views.py).
SEARCH_QUEUE_STATEMENTS: list[str] = [*pg_views.SEARCH_QUEUE_STATEMENTS]
SEARCH_QUEUE_DROP_STATEMENTS: list[str] = [*pg_views.SEARCH_QUEUE_DROP_STATEMENTS]
