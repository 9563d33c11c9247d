"""The lines of `transcript_lines` that the navigation index holds, and the extracted
`side_append` column that index reads (the table itself is in `schema/tables.py`).

Writers on both backends compute `side_append` here for every line they store, so this
module needs no SQLAlchemy."""

from __future__ import annotations

SIDE_APPEND_MARK = b'"appendMode":"side"'
"""The text whose presence in a line sets `transcript_lines.side_append`: an entry written
with `appendMode: "side"` (transcripts/navigation.py) holds it, as the gateway writes it."""


def side_append(line: str | bytes) -> int:
    """`transcript_lines.side_append` for a line: 1 when its bytes hold `SIDE_APPEND_MARK`.
    A substring test on the stored bytes, like the text search it stands for, so the index
    below is decided without reading the line again in SQL."""
    if isinstance(line, str):
        return int(_SIDE_APPEND_TEXT in line)
    return int(SIDE_APPEND_MARK in line)


_SIDE_APPEND_TEXT = SIDE_APPEND_MARK.decode()

NAVIGATION_LINES = "kind = 'entry' AND (type IN ('leaf', 'reset') OR side_append = 1)"
"""The lines that make a transcript follow today's tree rules (transcripts/navigation.py),
in the words of both dialects: a query must spell its condition exactly so for SQLite to use
`ix_transcript_lines_navigation`. The condition reads extracted columns only: a condition
reading `line` makes SQLite copy a line while inserting it."""
