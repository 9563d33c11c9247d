"""Schema objects SQLAlchemy Core cannot describe: full-text index, triggers, views.

Each statement carries SQL comments so that `.schema` in the sqlite3 shell explains itself.
Created by the same Alembic revisions as the tables (see migrations/versions).
"""

from __future__ import annotations

# Full-text index over the text of message entries. Its rows are written by the transcript
# code in the same transaction as the lines they index (rowid = transcript_lines.line_pk)
# and removed by the trigger below, so it is never stale. `store-sql search --rebuild`
# rebuilds it from transcript_lines. The trigram tokenizer (SQLite >= 3.34) finds any
# substring of 3+ characters, which suits code, ids and non-space-separated languages.
FTS_TABLE = """
CREATE VIRTUAL TABLE IF NOT EXISTS entry_text_fts USING fts5(
    text,              -- message text: user/assistant text blocks, tool results, summaries
    tokenize = 'trigram'
)
"""

FTS_DELETE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS transcript_lines_fts_delete
AFTER DELETE ON transcript_lines
-- Keep the full-text index in step with deleted lines (purges, superseded versions).
BEGIN
    DELETE FROM entry_text_fts WHERE rowid = old.line_pk;
END
"""

CREATE_STATEMENTS: tuple[str, ...] = (FTS_TABLE, FTS_DELETE_TRIGGER)
DROP_STATEMENTS: tuple[str, ...] = (
    "DROP TRIGGER IF EXISTS transcript_lines_fts_delete",
    "DROP TABLE IF EXISTS entry_text_fts",
)
