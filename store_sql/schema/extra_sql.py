"""Schema objects SQLAlchemy Core cannot describe: full-text index, triggers, views.

Each statement carries SQL comments so that `.schema` in the sqlite3 shell explains itself.
Created by the same Alembic revisions as the tables (see migrations/versions).
"""

from __future__ import annotations

# Full-text index over the text of message entries (rowid = transcript_lines.line_pk).
# Appends and imports do not write it: a single-row FTS5 insert costs 200-400 µs at commit,
# more than the rest of an append, and trigram indexing was ~75% of an import. The store's
# background indexer (search/indexer.py) indexes the lines above
# search_index_state.indexed_upto in batches while the writer is idle; a search reads the
# index and scans the few lines above the mark itself, so it never misses an entry.
# `store-sql search --rebuild` empties the index and sets the mark back to 0.
# The trigram tokenizer (SQLite >= 3.34) finds any substring of 3+ characters, which suits
# code, ids and non-space-separated languages.
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

SEARCH_STATE_ROW = """
INSERT OR IGNORE INTO search_index_state (id, indexed_upto) VALUES (1, 0)
"""

SEARCH_MARK_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS transcript_lines_search_mark
AFTER DELETE ON transcript_lines
-- SQLite gives a new row max(line_pk) + 1, so deleting the highest lines lets their numbers
-- come back. Lowering the mark to the highest remaining line_pk keeps such a reused number
-- above it, where the indexer will find it; deleting any other line changes nothing.
BEGIN
    UPDATE search_index_state
    SET indexed_upto = (SELECT coalesce(max(line_pk), 0) FROM transcript_lines)
    WHERE indexed_upto > (SELECT coalesce(max(line_pk), 0) FROM transcript_lines);
END
"""

# --- The full-text index from revision 0006 on ---------------------------------------------
# The index keeps no copy of the text. `entry_text_fts` is an external-content FTS5 table
# whose content is the view `entry_search_text`: the text is computed from the stored line
# whenever SQLite needs it (a LIKE check, a snippet, a delete), so the only extra bytes
# are the trigram index itself. `detail=none` keeps only which lines hold each trigram, not
# where: a third of the size of positions and enough to find candidate lines, which the
# search then checks against their text (search/query.py). `columnsize=0` drops the
# per-line token counts, which only ranking uses.
# An external-content index must be told the exact text of a line it forgets, so the view
# is the one definition of that text: the indexer inserts from it and the triggers delete
# through it; `store-sql search --rebuild` refills the index from it.


SEARCH_TEXT_CHARS = 65_536
"""The characters of a line's searchable text that are searchable: the first 64 Ki. Search
finds what a person looks for in a conversation: the prose of a message, a tool's name, a
command and the start of its output; past that, a line holds a pasted file or a tool's
whole output. The trigram index takes about 0.5 s per MiB of text, in the writer's time:
a capped line is indexed in about 50 ms, where a 200 MiB line took minutes. Every reader
of the text (the view, the index's triggers, the PostgreSQL function, search.entry_text)
cuts it here, so all agree on what is searchable."""


LONG_LINE_BYTES = 131_072
"""Lines longer than this get their searchable text from `one_pass_search_text_sql` (each
line's `byte_size` decides): the line is read and parsed twice in all, where
`search_text_sql` reads and parses it at each of its references, which is what a long line
costs. Below this size the per-reference expression is the cheaper of the two (the one-pass
form sorts the JSON's nodes by the block they belong to)."""


def search_text_sql(line: str, chars: int | None = SEARCH_TEXT_CHARS) -> str:
    """SQL for the searchable text of the entry line `line` (a column reference): what
    `search.entry_text.entry_search_text` gives for the parsed line, NULL when it has none;
    its first `chars` characters (None: all of it, as before revision 0007).

    Message entries give their text blocks and toolCall names (one per line), or a string
    content; bash executions their command and output; compactions and branch summaries
    their summary; custom messages their content; session_info and label entries their name
    (or label). Only JSON text is read: a BLOB line or invalid JSON has no text.

    The line is checked once, around the whole expression: SQLite loads (and the JSON
    functions parse) a value anew at every reference, which is what a long line costs."""
    j = line

    def blocks(path: str) -> str:
        return (
            f"CASE json_type({j}, '{path}') "
            f"WHEN 'text' THEN json_extract({j}, '{path}') "
            "WHEN 'array' THEN (SELECT group_concat(CASE "
            "WHEN json_extract(b.value, '$.type') = 'text' "
            "AND json_type(b.value, '$.text') = 'text' THEN json_extract(b.value, '$.text') "
            "WHEN json_extract(b.value, '$.type') = 'toolCall' "
            "AND json_type(b.value, '$.name') = 'text' THEN json_extract(b.value, '$.name') "
            f"END, char(10)) FROM json_each({j}, '{path}') AS b WHERE b.type = 'object') "
            "END"
        )

    def string(path: str) -> str:
        return f"CASE WHEN json_type({j}, '{path}') = 'text' THEN json_extract({j}, '{path}') END"

    command, output = string("$.message.command"), string("$.message.output")
    bash = (
        f"CASE WHEN ({command}) IS NOT NULL AND ({output}) IS NOT NULL "
        f"THEN ({command}) || char(10) || ({output}) ELSE coalesce({command}, {output}) END"
    )
    name = (
        f"CASE WHEN json_type({j}, '$.name') IS NOT NULL THEN {string('$.name')} "
        f"ELSE {string('$.label')} END"
    )
    text = (
        f"nullif(CASE json_extract({j}, '$.type') "
        f"WHEN 'message' THEN CASE WHEN json_extract({j}, '$.message.role') = 'bashExecution' "
        f"THEN {bash} ELSE {blocks('$.message.content')} END "
        f"WHEN 'compaction' THEN {string('$.summary')} "
        f"WHEN 'branch_summary' THEN {string('$.summary')} "
        f"WHEN 'custom_message' THEN {blocks('$.content')} "
        f"WHEN 'session_info' THEN {name} "
        f"WHEN 'label' THEN {name} "
        "END, '')"
    )
    if chars is not None:
        text = f"substr({text}, 1, {chars})"
    return f"(CASE WHEN typeof({line}) = 'text' AND json_valid({line}) THEN {text} END)"


# The fields search_text_sql reads, as json_tree names them, and the column prefix each
# gets in one_pass_search_text_sql.
_FIELDS = {
    "$.type": "t",
    "$.message.role": "role",
    "$.message.command": "cmd",
    "$.message.output": "out",
    "$.summary": "summary",
    "$.name": "name",
    "$.label": "label",
    "$.message.content": "mc",
    "$.content": "cc",
}
_KINDS = ("t", "role")
"""The fields that choose what the text is: compared whole, never cut."""
_BLOCK_ARRAYS = ("$.message.content", "$.content")


def one_pass_search_text_sql(line: str, chars: int | None = SEARCH_TEXT_CHARS) -> str:
    """The same text as `search_text_sql`, with the line parsed once by `json_tree` (and once
    by `json_valid`, the guard): the nodes that matter are grouped by the content block they
    belong to, each block gives its text, and the blocks are joined in order. Each string is
    cut at `chars` characters as soon as it is read, so no copy of a long string is made
    past that (the first `chars` characters of the joined text are the same).

    Where an object holds a key twice, json_extract reads the first and this form may read
    either: such lines are the only ones where the two can differ."""
    arrays = ", ".join(f"'{path}'" for path in _BLOCK_ARRAYS)
    element = f"n.path IN ({arrays})"

    def in_block(path: str) -> str:
        # n is a field of an element of the array at `path`: its own path is `path[N]`.
        start = len(path) + 1
        return (
            f"(substr(n.path, 1, {start}) = '{path}[' "
            f"AND ltrim(substr(n.path, {start + 1}), '0123456789') = ']')"
        )

    field = "(" + " OR ".join(in_block(path) for path in _BLOCK_ARRAYS) + ")"
    atom = (
        "n.atom"
        if chars is None
        else f"CASE WHEN n.type = 'text' THEN substr(n.atom, 1, {chars}) ELSE n.atom END"
    )

    def block_field(key: str, column: str) -> str:
        value = {"atom": "n.atom", "text": atom}.get(column, f"n.{column}")
        return f"max(CASE WHEN {field} AND n.key = '{key}' THEN {value} END)"

    block_type = block_field("type", "atom")
    block = (
        f"CASE WHEN max(CASE WHEN {element} THEN n.type END) = 'object' THEN CASE "
        f"WHEN {block_type} = 'text' AND {block_field('text', 'type')} = 'text' "
        f"THEN {block_field('text', 'text')} "
        f"WHEN {block_type} = 'toolCall' AND {block_field('name', 'type')} = 'text' "
        f"THEN {block_field('name', 'text')} END END"
    )
    fields = ", ".join(
        f"max(CASE WHEN n.fullkey = '{path}' THEN {'n.atom' if name in _KINDS else atom} END) "
        f"AS {name}_v, "
        f"max(CASE WHEN n.fullkey = '{path}' THEN n.type END) AS {name}_t"
        for path, name in _FIELDS.items()
    )
    wanted = ", ".join(f"'{path}'" for path in _FIELDS)
    # One row per content block (its element's id), and one (-1) for the entry's fields.
    nodes = (
        f"SELECT CASE WHEN {element} THEN n.id WHEN {field} THEN n.parent ELSE -1 END AS g, "
        f"max(CASE WHEN {element} THEN n.path END) AS arr, {block} AS b, {fields} "
        f"FROM json_tree({line}) AS n WHERE n.fullkey IN ({wanted}) OR {element} "
        f"OR ({field} AND n.key IN ('type', 'text', 'name')) GROUP BY 1 ORDER BY 1"
    )
    joined = ", ".join(f"max(x.{name}_v) AS {name}_v, max(x.{name}_t) AS {name}_t"
                       for name in _FIELDS.values())  # fmt: skip
    entry = (
        f"SELECT {joined}, "
        f"group_concat(CASE WHEN x.arr = '$.message.content' THEN x.b END, char(10)) AS mb, "
        f"group_concat(CASE WHEN x.arr = '$.content' THEN x.b END, char(10)) AS cb "
        f"FROM ({nodes}) AS x"
    )

    def string(name: str) -> str:
        return f"CASE WHEN y.{name}_t = 'text' THEN y.{name}_v END"

    def blocks(name: str, joined_blocks: str) -> str:
        return (
            f"CASE y.{name}_t WHEN 'text' THEN y.{name}_v WHEN 'array' THEN y.{joined_blocks} END"
        )

    command, output = string("cmd"), string("out")
    bash = (
        f"CASE WHEN ({command}) IS NOT NULL AND ({output}) IS NOT NULL "
        f"THEN ({command}) || char(10) || ({output}) ELSE coalesce({command}, {output}) END"
    )
    name = f"CASE WHEN y.name_t IS NOT NULL THEN {string('name')} ELSE {string('label')} END"
    text = (
        "nullif(CASE y.t_v "
        "WHEN 'message' THEN CASE WHEN y.role_v = 'bashExecution' "
        f"THEN {bash} ELSE {blocks('mc', 'mb')} END "
        f"WHEN 'compaction' THEN {string('summary')} "
        f"WHEN 'branch_summary' THEN {string('summary')} "
        f"WHEN 'custom_message' THEN {blocks('cc', 'cb')} "
        f"WHEN 'session_info' THEN {name} "
        f"WHEN 'label' THEN {name} "
        "END, '')"
    )
    if chars is not None:
        text = f"substr({text}, 1, {chars})"
    return (
        f"(CASE WHEN typeof({line}) = 'text' AND json_valid({line}) "
        f"THEN (SELECT {text} FROM ({entry}) AS y) END)"
    )


def line_search_text_sql(line: str, byte_size: str, chars: int | None = SEARCH_TEXT_CHARS) -> str:
    """The searchable text of a stored line (`line` and its `byte_size` column): the
    expression suited to its size, as the view and the index's triggers compute it."""
    return (
        f"(CASE WHEN {byte_size} > {LONG_LINE_BYTES} THEN {one_pass_search_text_sql(line, chars)} "
        f"ELSE {search_text_sql(line, chars)} END)"
    )


def _text_sql(line: str, chars: int | None, *, by_size: bool) -> str:
    if by_size:
        return line_search_text_sql(f"{line}line", f"{line}byte_size", chars)
    return search_text_sql(f"{line}line", chars)


def _search_text_view(chars: int | None, *, by_size: bool = False) -> str:
    return f"""
CREATE VIEW IF NOT EXISTS entry_search_text AS
-- The searchable text of every entry line that has some (the content of entry_text_fts):
-- message text blocks and tool names, bash command and output, summaries, custom message
-- content, session names and labels. line_pk is the full-text rowid.
SELECT line_pk, text FROM (
    SELECT line_pk, {_text_sql("", chars, by_size=by_size)} AS text
    FROM transcript_lines WHERE kind = 'entry'
) WHERE text IS NOT NULL
"""


ENTRY_SEARCH_TEXT_VIEW = _search_text_view(SEARCH_TEXT_CHARS)

EXTERNAL_FTS_TABLE = """
CREATE VIRTUAL TABLE IF NOT EXISTS entry_text_fts USING fts5(
    text,              -- entry_search_text.text, read from the view, not stored here
    content = 'entry_search_text',
    content_rowid = 'line_pk',
    tokenize = 'trigram',
    detail = none,     -- which lines hold a trigram, not where: candidates, checked by text
    columnsize = 0
)
"""


# Forgetting an indexed line: FTS5 must be given the text it indexed, so the trigger
# computes it from the old line exactly as the view does. Lines above the indexer's mark
# were never indexed and are left alone. The mark then drops below a deleted highest line:
# SQLite gives a new row max(line_pk) + 1, so deleting the highest lines lets their numbers
# come back, and a reused number must be above the mark, where the indexer finds it. One
# trigger does both, in this order (the FTS delete reads the mark before it moves).
def _search_delete_trigger(chars: int | None, *, by_size: bool = False) -> str:
    return f"""
CREATE TRIGGER IF NOT EXISTS transcript_lines_search_delete
AFTER DELETE ON transcript_lines
-- Remove an indexed line from entry_text_fts; keep the indexer's mark below reused line_pks.
BEGIN
    INSERT INTO entry_text_fts (entry_text_fts, rowid, text)
    SELECT 'delete', old.line_pk, x.text
    FROM (SELECT {_text_sql("old.", chars, by_size=by_size)} AS text) AS x
    WHERE old.kind = 'entry' AND x.text IS NOT NULL
      AND old.line_pk <= (SELECT indexed_upto FROM search_index_state WHERE id = 1);
    UPDATE search_index_state
    SET indexed_upto = (SELECT coalesce(max(line_pk), 0) FROM transcript_lines)
    WHERE indexed_upto > (SELECT coalesce(max(line_pk), 0) FROM transcript_lines);
END
"""


SEARCH_DELETE_TRIGGER = _search_delete_trigger(SEARCH_TEXT_CHARS)


# The store never rewrites an indexed line; a hand edit (`store-sql sql --write`) may.
def _search_update_trigger(chars: int | None, *, by_size: bool = False) -> str:
    return f"""
CREATE TRIGGER IF NOT EXISTS transcript_lines_search_update
AFTER UPDATE OF line, kind ON transcript_lines
WHEN old.line_pk <= (SELECT indexed_upto FROM search_index_state WHERE id = 1)
-- Keep entry_text_fts in step with a rewritten indexed line.
BEGIN
    INSERT INTO entry_text_fts (entry_text_fts, rowid, text)
    SELECT 'delete', old.line_pk, x.text
    FROM (SELECT {_text_sql("old.", chars, by_size=by_size)} AS text) AS x
    WHERE old.kind = 'entry' AND x.text IS NOT NULL;
    INSERT INTO entry_text_fts (rowid, text)
    SELECT new.line_pk, x.text
    FROM (SELECT {_text_sql("new.", chars, by_size=by_size)} AS text) AS x
    WHERE new.kind = 'entry' AND x.text IS NOT NULL;
END
"""


SEARCH_UPDATE_TRIGGER = _search_update_trigger(SEARCH_TEXT_CHARS)


def search_text_statements(chars: int | None, *, by_size: bool = False) -> tuple[str, ...]:
    """The view and the two triggers that define a line's searchable text, cut at `chars`
    characters (None: whole); `by_size`: long lines parsed once (`line_search_text_sql`,
    from revision 0009 on). Revisions 0007 and 0009 replace them (and their downgrades)."""
    return (
        _search_text_view(chars, by_size=by_size),
        _search_delete_trigger(chars, by_size=by_size),
        _search_update_trigger(chars, by_size=by_size),
    )


SEARCH_TEXT_DROP_STATEMENTS: tuple[str, ...] = (
    "DROP TRIGGER IF EXISTS transcript_lines_search_update",
    "DROP TRIGGER IF EXISTS transcript_lines_search_delete",
    "DROP VIEW IF EXISTS entry_search_text",
)

# --- Maintainer views (docs/SCHEMA.md) -------------------------------------------------------
# Plain SQL with SQLite's built-in JSON functions, so they work the same in the sqlite3 shell,
# Datasette and `store-sql sql`. A line is JSON text only when `typeof(line) = 'text'`: BLOB
# lines are bytes that were not valid UTF-8 (damaged), and json_valid()/json_extract() would
# raise on them (or, from SQLite 3.45, read them as JSONB). Every JSON read below therefore
# goes through `CASE WHEN typeof(line) = 'text' AND json_valid(line) THEN line END`: a CASE
# fixes the evaluation order, so no filter a caller adds can make SQLite parse a bad line.
# (No `:name` sequences anywhere in this SQL: Alembic's op.execute reads them as parameters.)

SESSIONS_VIEW = """
CREATE VIEW IF NOT EXISTS sessions AS
-- One row per session key: the main columns of its index entry (already extracted into
-- session_entries) and the current live transcript of its sessionId, chosen as the store API
-- chooses it (transcripts.find_live): kind 'live' or 'fork', not superseded,
-- `<sessionId>.jsonl` first,
-- then the newest. Times named *_at are epoch milliseconds, as sessions.json holds them.
SELECT
    e.agent_id,
    e.session_key,
    e.session_id,
    e.updated_at,
    strftime('%Y-%m-%dT%H:%M:%fZ', e.updated_at / 1000.0, 'unixepoch') AS updated_at_iso,
    e.session_started_at,
    e.last_interaction_at,
    e.chat_type,
    e.channel,
    e.label,
    e.display_name,
    e.model_provider,
    e.model,
    e.status,
    e.archived_at,
    e.spawned_by,
    e.input_tokens,
    e.output_tokens,
    e.total_tokens,
    e.context_tokens,
    e.compaction_count,
    e.entry_bytes,
    e.problem,
    t.transcript_id,
    t.file_name AS transcript_file,
    t.entry_count AS transcript_entries,
    t.byte_size AS transcript_bytes,
    t.damaged_count AS damaged_lines,
    t.leaf_id
FROM session_entries AS e
LEFT JOIN transcripts AS t ON t.transcript_id = (
    SELECT c.transcript_id FROM transcripts AS c
    WHERE c.agent_id = e.agent_id AND c.session_id = e.session_id
      AND c.kind IN ('live', 'fork') AND c.superseded_by IS NULL
    ORDER BY c.file_name = c.session_id || '.jsonl' DESC, c.transcript_id DESC
    LIMIT 1
)
"""

MESSAGES_VIEW = """
CREATE VIEW IF NOT EXISTS messages AS
-- One row per `message` entry of every current (not superseded) transcript: live
-- transcripts and archives alike (filter on transcript_kind). `text` joins the text blocks
-- of message.content (or the string content; the summary of branch/compaction summaries;
-- command and output of bash executions); `tool_names` lists the toolCall names of an
-- assistant message, or the toolName of a tool result. Damaged lines are not messages.
-- (`+e.updated_at` keeps SQLite on the (agent_id, session_id) index for the key lookup
-- instead of walking all of the agent's entries in updated_at order.)
SELECT
    m.line_pk,
    t.agent_id,
    (SELECT e.session_key FROM session_entries AS e
     WHERE e.agent_id = t.agent_id AND e.session_id = t.session_id
     ORDER BY +e.updated_at DESC LIMIT 1) AS session_key,
    t.session_id,
    m.transcript_id,
    t.kind AS transcript_kind,
    m.pos,
    m.entry_id,
    m.parent_id,
    m.timestamp,
    m.role,
    CASE
        WHEN m.role = 'bashExecution' THEN
            coalesce(json_extract(m.j, '$.message.command'), '') || char(10)
            || coalesce(json_extract(m.j, '$.message.output'), '')
        WHEN json_type(m.j, '$.message.content') = 'text' THEN
            json_extract(m.j, '$.message.content')
        WHEN json_type(m.j, '$.message.content') = 'array' THEN
            (SELECT group_concat(json_extract(b.value, '$.text'), char(10))
             FROM json_each(m.j, '$.message.content') AS b
             WHERE CASE WHEN b.type = 'object' THEN json_extract(b.value, '$.type') END = 'text')
        ELSE json_extract(m.j, '$.message.summary')
    END AS text,
    coalesce(
        (SELECT group_concat(json_extract(b.value, '$.name'), ',')
         FROM json_each(m.j, '$.message.content') AS b
         WHERE CASE WHEN b.type = 'object' THEN json_extract(b.value, '$.type') END
               = 'toolCall'),
        json_extract(m.j, '$.message.toolName')
    ) AS tool_names,
    json_extract(m.j, '$.message.toolCallId') AS tool_call_id,
    json_extract(m.j, '$.message.isError') AS is_error,
    json_extract(m.j, '$.message.provider') AS provider,
    json_extract(m.j, '$.message.model') AS model,
    json_extract(m.j, '$.message.stopReason') AS stop_reason,
    json_extract(m.j, '$.message.usage.input') AS input_tokens,
    json_extract(m.j, '$.message.usage.output') AS output_tokens,
    json_extract(m.j, '$.message.usage.cacheRead') AS cache_read_tokens,
    json_extract(m.j, '$.message.usage.cacheWrite') AS cache_write_tokens,
    json_extract(m.j, '$.message.usage.totalTokens') AS total_tokens,
    json_extract(m.j, '$.message.usage.cost.total') AS cost,
    m.byte_size
FROM (
    SELECT l.*, CASE WHEN typeof(l.line) = 'text' AND json_valid(l.line) THEN l.line END AS j
    FROM transcript_lines AS l
    WHERE l.kind = 'entry' AND l.type = 'message'
) AS m
JOIN transcripts AS t ON t.transcript_id = m.transcript_id AND t.superseded_by IS NULL
WHERE m.j IS NOT NULL
"""

ACTIVE_PATH_VIEW = """
CREATE VIEW IF NOT EXISTS active_path AS
-- The active path of every current transcript: from its leaf (transcripts.leaf_pos, the last
-- entry in file order) up through parent_pos to the root. depth 0 is the leaf; order by
-- depth DESC for root -> leaf. parent_pos always points to an earlier line, so the walk
-- ends; the `<` test keeps that true even on a hand-edited database. SQLite cannot push a
-- WHERE into a recursive CTE: every transcript's path is walked, then filtered.
WITH RECURSIVE walk(transcript_id, pos, depth) AS (
    SELECT transcript_id, leaf_pos, 0 FROM transcripts
    WHERE superseded_by IS NULL AND leaf_pos IS NOT NULL
    UNION ALL
    SELECT l.transcript_id, l.parent_pos, walk.depth + 1
    FROM walk JOIN transcript_lines AS l
        ON l.transcript_id = walk.transcript_id AND l.pos = walk.pos
    WHERE l.parent_pos IS NOT NULL AND l.parent_pos < l.pos
)
SELECT
    t.agent_id,
    t.session_id,
    w.transcript_id,
    t.kind AS transcript_kind,
    w.depth,
    l.line_pk,
    l.pos,
    l.entry_id,
    l.parent_id,
    l.type,
    l.role,
    l.timestamp,
    l.byte_size,
    l.line
FROM walk AS w
JOIN transcript_lines AS l ON l.transcript_id = w.transcript_id AND l.pos = w.pos
JOIN transcripts AS t ON t.transcript_id = w.transcript_id
"""

RESOLVED_LABELS_VIEW = """
CREATE VIEW IF NOT EXISTS resolved_labels AS
-- Entry labels as pi resolves them (labelsById): per transcript and target entry, the last
-- `label` entry in file order wins; an empty or missing label clears the target. Label
-- entries whose targetId is not a string are ignored. Current transcripts only.
WITH label_entries AS (
    SELECT x.transcript_id, x.pos, x.entry_id, x.timestamp,
           json_extract(x.j, '$.targetId') AS target_id,
           json_extract(x.j, '$.label') AS label
    FROM (
        SELECT transcript_id, pos, entry_id, timestamp,
               CASE WHEN typeof(line) = 'text' AND json_valid(line) THEN line END AS j
        FROM transcript_lines
        WHERE kind = 'entry' AND type = 'label'
    ) AS x
    WHERE x.j IS NOT NULL
),
latest AS (
    SELECT transcript_id, target_id, max(pos) AS pos FROM label_entries
    WHERE typeof(target_id) = 'text'
    GROUP BY transcript_id, target_id
)
SELECT
    t.agent_id,
    t.session_id,
    le.transcript_id,
    le.target_id,
    (SELECT max(l.pos) FROM transcript_lines AS l
     WHERE l.transcript_id = le.transcript_id AND l.entry_id = le.target_id
       AND l.kind = 'entry') AS target_pos,
    le.label,
    le.pos AS label_pos,
    le.entry_id AS label_entry_id,
    le.timestamp AS labelled_at
FROM latest
JOIN label_entries AS le ON le.transcript_id = latest.transcript_id AND le.pos = latest.pos
JOIN transcripts AS t ON t.transcript_id = le.transcript_id AND t.superseded_by IS NULL
WHERE typeof(le.label) = 'text' AND le.label <> ''
"""

SESSION_STATS_VIEW = """
CREATE VIEW IF NOT EXISTS session_stats AS
-- Per session key: counts and sizes of its live transcript, the bytes of every other
-- transcript of its sessionId (archives, snapshots, old versions), and token totals summed
-- from message.usage of the assistant messages in the live transcript (every branch: what
-- was spent, not only the active path). One pass over the message lines of all live
-- transcripts; for one session, filter the messages view instead (docs/SCHEMA.md).
SELECT
    s.agent_id,
    s.session_key,
    s.session_id,
    s.transcript_id,
    coalesce(t.line_count, 0) AS lines,
    coalesce(t.entry_count, 0) AS entries,
    coalesce(g.messages, 0) AS messages,
    coalesce(g.user_messages, 0) AS user_messages,
    coalesce(g.assistant_messages, 0) AS assistant_messages,
    coalesce(g.tool_results, 0) AS tool_results,
    coalesce(t.damaged_count, 0) AS damaged_lines,
    coalesce(t.byte_size, 0) AS transcript_bytes,
    s.entry_bytes,
    (SELECT count(*) FROM transcripts AS o
     WHERE o.agent_id = s.agent_id AND o.session_id = s.session_id
       AND o.transcript_id IS NOT s.transcript_id) AS other_transcripts,
    (SELECT coalesce(sum(o.byte_size), 0) FROM transcripts AS o
     WHERE o.agent_id = s.agent_id AND o.session_id = s.session_id
       AND o.transcript_id IS NOT s.transcript_id) AS other_transcript_bytes,
    coalesce(g.input_tokens, 0) AS usage_input_tokens,
    coalesce(g.output_tokens, 0) AS usage_output_tokens,
    coalesce(g.cache_read_tokens, 0) AS usage_cache_read_tokens,
    coalesce(g.cache_write_tokens, 0) AS usage_cache_write_tokens,
    coalesce(g.total_tokens, 0) AS usage_total_tokens,
    coalesce(g.cost, 0) AS usage_cost
FROM sessions AS s
LEFT JOIN transcripts AS t ON t.transcript_id = s.transcript_id
LEFT JOIN (
    SELECT
        u.transcript_id,
        count(*) AS messages,
        sum(u.role = 'user') AS user_messages,
        sum(u.role = 'assistant') AS assistant_messages,
        sum(u.role = 'toolResult') AS tool_results,
        sum(json_extract(u.j, '$.message.usage.input')) AS input_tokens,
        sum(json_extract(u.j, '$.message.usage.output')) AS output_tokens,
        sum(json_extract(u.j, '$.message.usage.cacheRead')) AS cache_read_tokens,
        sum(json_extract(u.j, '$.message.usage.cacheWrite')) AS cache_write_tokens,
        sum(json_extract(u.j, '$.message.usage.totalTokens')) AS total_tokens,
        sum(json_extract(u.j, '$.message.usage.cost.total')) AS cost
    FROM (
        SELECT l.transcript_id, l.role,
               CASE WHEN l.role = 'assistant' AND typeof(l.line) = 'text' AND json_valid(l.line)
                    THEN l.line END AS j
        FROM transcript_lines AS l
        JOIN transcripts AS c ON c.transcript_id = l.transcript_id
        WHERE c.kind IN ('live', 'fork') AND c.superseded_by IS NULL
          AND l.kind = 'entry' AND l.type = 'message'
    ) AS u
    GROUP BY u.transcript_id
) AS g ON g.transcript_id = s.transcript_id
"""

# Views in creation order (session_stats reads the sessions view); dropped in reverse.
VIEWS: dict[str, str] = {
    "sessions": SESSIONS_VIEW,
    "messages": MESSAGES_VIEW,
    "active_path": ACTIVE_PATH_VIEW,
    "resolved_labels": RESOLVED_LABELS_VIEW,
    "session_stats": SESSION_STATS_VIEW,
}

# Revision 0001: the full-text index, its delete trigger and the views.
INITIAL_STATEMENTS: tuple[str, ...] = (FTS_TABLE, FTS_DELETE_TRIGGER, *VIEWS.values())
INITIAL_DROP_STATEMENTS: tuple[str, ...] = (
    *(f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEWS)),
    "DROP TRIGGER IF EXISTS transcript_lines_fts_delete",
    "DROP TABLE IF EXISTS entry_text_fts",
)
# Revision 0002: the background indexer's mark (the table itself is in schema/tables.py).
SEARCH_STATE_STATEMENTS: tuple[str, ...] = (SEARCH_STATE_ROW, SEARCH_MARK_TRIGGER)

# Revision 0006: the index holds no copy of the text (search_text.py).
EXTERNAL_INDEX_STATEMENTS: tuple[str, ...] = (
    ENTRY_SEARCH_TEXT_VIEW,
    EXTERNAL_FTS_TABLE,
    SEARCH_DELETE_TRIGGER,
    SEARCH_UPDATE_TRIGGER,
)
EXTERNAL_INDEX_DROP_STATEMENTS: tuple[str, ...] = (
    "DROP TRIGGER IF EXISTS transcript_lines_search_update",
    "DROP TRIGGER IF EXISTS transcript_lines_search_delete",
    "DROP TABLE IF EXISTS entry_text_fts",
    "DROP VIEW IF EXISTS entry_search_text",
)

# Revision 0009: long lines parsed once.
HEAD_SEARCH_TEXT_STATEMENTS = search_text_statements(SEARCH_TEXT_CHARS, by_size=True)


def search_text_rows_sql(lines: str, *, by_size: bool = True) -> str:
    """The view's rows for the lines `lines` selects (a condition on transcript_lines),
    computed from the same expression as the view (`search_text_statements`). Read through
    the view, the expression is computed twice per line (SQLite copies it into the view's
    `text IS NOT NULL`); `LIMIT -1` keeps the inner query a co-routine, so it is computed
    once."""
    return (
        "SELECT line_pk, text FROM ("
        f"SELECT line_pk, {_text_sql('', SEARCH_TEXT_CHARS, by_size=by_size)} AS text "
        f"FROM transcript_lines WHERE kind = 'entry' AND {lines} LIMIT -1"
        ") WHERE text IS NOT NULL"
    )


# What the background indexer adds to the index: the view's rows for a range of line_pk.
INDEX_RANGE = "INSERT INTO entry_text_fts (rowid, text) " + search_text_rows_sql(
    "line_pk > ? AND line_pk <= ?"
)

# Everything at the head revision (store-sql doctor checks a database against it).
CREATE_STATEMENTS: tuple[str, ...] = (
    *VIEWS.values(),
    SEARCH_STATE_ROW,
    HEAD_SEARCH_TEXT_STATEMENTS[0],
    EXTERNAL_FTS_TABLE,
    *HEAD_SEARCH_TEXT_STATEMENTS[1:],
)
