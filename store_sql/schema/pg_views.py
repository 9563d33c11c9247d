"""The search index and the maintainer views in PostgreSQL's words (schema/pg_sql.py lists
them per revision).

They answer what `extra_sql`'s SQLite text answers, row for row (tests/test_pg_views.py),
with these differences of dialect:

- A line is JSON only when `line` is set (a line kept as bytes has `line` NULL) and parses:
  `entry_line_json(line)` gives it as `jsonb`, NULL when it does not parse, so no filter a
  caller adds can make a query fail on a bad line. `jsonb` keeps the last of duplicate keys
  (SQLite's `json_extract` finds the first); it refuses the escape `\\u0000`, so such a line
  is read with U+FFFD in place of each NUL.
- A column has one type: JSON numbers are `numeric`, booleans the integers 1 and 0 (as
  SQLite gives them), and a value of another JSON type than the column's is NULL (SQLite
  returns it as it is).
(No `:name` sequences anywhere in this SQL: Alembic's op.execute reads them as parameters.)
"""

from __future__ import annotations

from store_sql.schema.extra_sql import SEARCH_TEXT_CHARS

# --- parsing a line ---------------------------------------------------------------------------

# IMMUTABLE so that the search index can be built on it. Lines containing `\u0000` are the
# only valid JSON jsonb refuses (22P05); reading them with U+FFFD keeps their other text.
# Not PARALLEL SAFE: catching an error starts a subtransaction, which a parallel query
# refuses; a query using it runs in one process.
LINE_JSON_FUNCTION = r"""
CREATE OR REPLACE FUNCTION entry_line_json(line text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
-- The stored line as jsonb, NULL when it is not JSON (damaged or hand-written lines).
BEGIN
    RETURN line::jsonb;
EXCEPTION
    WHEN untranslatable_character THEN
        BEGIN
            RETURN replace(line, '\u0000', '\ufffd')::jsonb;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END;
    WHEN others THEN
        RETURN NULL;
END
$$
"""

# The same text as search/entry_text.py gives for the parsed line, and as
# extra_sql.search_text_sql gives on SQLite.
_WHOLE_SEARCH_TEXT_FUNCTION = r"""
CREATE OR REPLACE FUNCTION entry_search_text(line text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
-- The searchable text of an entry line: message text blocks and tool names, bash command
-- and output, summaries, custom message content, session names and labels; NULL: none.
DECLARE
    j jsonb := entry_line_json(line);
    content jsonb;
    found text;
BEGIN
    IF j IS NULL THEN
        RETURN NULL;
    END IF;
    CASE j ->> 'type'
    WHEN 'message' THEN
        IF j -> 'message' ->> 'role' = 'bashExecution' THEN
            found := concat_ws(
                E'\n',
                CASE WHEN jsonb_typeof(j -> 'message' -> 'command') = 'string'
                     THEN j -> 'message' ->> 'command' END,
                CASE WHEN jsonb_typeof(j -> 'message' -> 'output') = 'string'
                     THEN j -> 'message' ->> 'output' END);
        ELSE
            content := j -> 'message' -> 'content';
        END IF;
    WHEN 'compaction', 'branch_summary' THEN
        IF jsonb_typeof(j -> 'summary') = 'string' THEN
            found := j ->> 'summary';
        END IF;
    WHEN 'custom_message' THEN
        content := j -> 'content';
    WHEN 'session_info', 'label' THEN
        IF j ? 'name' THEN
            IF jsonb_typeof(j -> 'name') = 'string' THEN
                found := j ->> 'name';
            END IF;
        ELSIF jsonb_typeof(j -> 'label') = 'string' THEN
            found := j ->> 'label';
        END IF;
    ELSE
        RETURN NULL;
    END CASE;
    IF jsonb_typeof(content) = 'string' THEN
        found := content #>> '{}';
    ELSIF jsonb_typeof(content) = 'array' THEN
        SELECT string_agg(CASE
            WHEN b.value ->> 'type' = 'text' AND jsonb_typeof(b.value -> 'text') = 'string'
                THEN b.value ->> 'text'
            WHEN b.value ->> 'type' = 'toolCall' AND jsonb_typeof(b.value -> 'name') = 'string'
                THEN b.value ->> 'name'
            END, E'\n' ORDER BY b.n)
        INTO found
        FROM jsonb_array_elements(content) WITH ORDINALITY AS b(value, n)
        WHERE jsonb_typeof(b.value) = 'object';
    END IF;
    RETURN nullif(found, '');
END
$$
"""


def search_text_function(chars: int | None) -> str:
    """`entry_search_text(line)` returning the first `chars` characters of the text (None:
    all of it, as before revision 0007); see extra_sql.SEARCH_TEXT_CHARS."""
    if chars is None:
        return _WHOLE_SEARCH_TEXT_FUNCTION
    whole = "RETURN nullif(found, '');"
    return _WHOLE_SEARCH_TEXT_FUNCTION.replace(whole, f"RETURN left(nullif(found, ''), {chars});")


SEARCH_TEXT_FUNCTION = search_text_function(SEARCH_TEXT_CHARS)

# --- the full-text index ----------------------------------------------------------------------

# Revision 0006's index: a trigram GIN index over the searchable text of every entry line,
# kept by PostgreSQL in the transaction that writes the line. Revision 0008 replaces it with
# the search tables below; 0006 and 0008's downgrade still create it.
TRGM_EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm"

LINE_INDEX_NAME = "ix_transcript_lines_search"

SEARCH_INDEX = f"""
CREATE INDEX IF NOT EXISTS {LINE_INDEX_NAME} ON transcript_lines
USING gin (entry_search_text(line) gin_trgm_ops) WHERE kind = 'entry'
"""

# The index from revision 0008 on, off the write path, as SQLite's is: an append stores its
# lines, and a statement trigger queues the entry lines' keys in `search_pending` (a b-tree
# insert per line, in the append's transaction, whatever path wrote the lines: appends,
# imports, COPY). The background indexer of each store process (search/pg_indexer.py)
# claims queued keys with FOR UPDATE SKIP LOCKED, so processes share the work without doing
# it twice, and moves each line's text into `search_text` in the same transaction as it
# deletes the key: in any snapshot a stored entry line is in exactly one of the two. A
# search reads `search_text` through its trigram index and computes the text of the queued
# lines itself (search/pg_query.py). `search_text` keeps the text the index was built
# from, so a candidate is checked without parsing its line again; a line's row goes with
# the line (ON DELETE CASCADE). Lines are never rewritten in place, so inserts are all
# the trigger has to follow.
SEARCH_INDEX_NAME = "ix_search_text_trgm"

SEARCH_QUEUE_STATEMENTS: tuple[str, ...] = (
    "CREATE TABLE search_pending (line_pk bigint NOT NULL, "
    "CONSTRAINT pk_search_pending PRIMARY KEY (line_pk))",
    "COMMENT ON TABLE search_pending IS 'entry lines not in search_text yet: the background "
    "indexer''s queue (PostgreSQL only)'",
    "CREATE TABLE search_text (line_pk bigint NOT NULL, text text NOT NULL, "
    "CONSTRAINT pk_search_text PRIMARY KEY (line_pk), "
    "CONSTRAINT fk_search_text_line FOREIGN KEY (line_pk) "
    "REFERENCES transcript_lines (line_pk) ON DELETE CASCADE)",
    "COMMENT ON TABLE search_text IS 'the searchable text of each indexed entry line that has "
    "some, under a trigram index (PostgreSQL only)'",
    """
CREATE OR REPLACE FUNCTION queue_entry_lines() RETURNS trigger
LANGUAGE plpgsql AS $$
-- Queue the entry lines a statement inserted for the background full-text indexer.
BEGIN
    INSERT INTO search_pending (line_pk) SELECT line_pk FROM new_lines WHERE kind = 'entry';
    RETURN NULL;
END
$$
""",
    "CREATE TRIGGER transcript_lines_search_queue AFTER INSERT ON transcript_lines "
    "REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION queue_entry_lines()",
    f"CREATE INDEX {SEARCH_INDEX_NAME} ON search_text USING gin (text gin_trgm_ops)",
    # The lines stored so far are queued: the background indexers move them in bounded
    # steps after the upgrade, which then takes a b-tree insert per line, not minutes of
    # computing every line's text in its transaction. Revision 0006's index over the
    # lines stays until they are (nearly) all indexed: searches find the queued lines
    # through it (search/pg_query.py), and the indexer drops it (`retire_line_index`).
    "INSERT INTO search_pending (line_pk) SELECT line_pk FROM transcript_lines "
    "WHERE kind = 'entry'",
    f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM search_pending) THEN
        DROP INDEX IF EXISTS {LINE_INDEX_NAME};
    END IF;
END
$$
""",
)
SEARCH_QUEUE_DROP_STATEMENTS: tuple[str, ...] = (
    SEARCH_INDEX,
    "DROP TRIGGER IF EXISTS transcript_lines_search_queue ON transcript_lines",
    "DROP FUNCTION IF EXISTS queue_entry_lines()",
    "DROP TABLE IF EXISTS search_text",
    "DROP TABLE IF EXISTS search_pending",
)

ENTRY_SEARCH_TEXT_VIEW = """
CREATE OR REPLACE VIEW entry_search_text AS
-- The searchable text of every entry line that has some (what the full-text index holds
-- once the indexer has come by).
SELECT line_pk, text FROM (
    SELECT line_pk, entry_search_text(line) AS text
    FROM transcript_lines WHERE kind = 'entry'
) AS x WHERE text IS NOT NULL
"""

# --- maintainer views -------------------------------------------------------------------------


def _number(path: str) -> str:
    return f"CASE WHEN jsonb_typeof({path}) = 'number' THEN ({path})::numeric END"


def _string(path: str) -> str:
    return f"CASE WHEN jsonb_typeof({path}) = 'string' THEN {path} #>> '{{}}' END"


def _boolean(path: str) -> str:
    """1 or 0, as SQLite's json_extract gives a JSON boolean (so `sum(is_error)` counts)."""
    return f"CASE WHEN jsonb_typeof({path}) = 'boolean' THEN ({path})::boolean::int END"


SESSIONS_VIEW = """
CREATE OR REPLACE VIEW sessions AS
-- One row per session key: the main columns of its index entry (already extracted into
-- session_entries) and the current live transcript of its sessionId, chosen as the store API
-- chooses it (transcripts.find_live): kind 'live' or 'fork', not superseded,
-- `<sessionId>.jsonl` first, then the newest. Times named *_at are epoch milliseconds, as
-- sessions.json holds them; updated_at_iso is NULL outside the years 1-9999.
SELECT
    e.agent_id,
    e.session_key,
    e.session_id,
    e.updated_at,
    CASE WHEN e.updated_at BETWEEN -62135596800000 AND 253402300799999 THEN
        to_char(timestamp '1970-01-01' + e.updated_at * interval '1 millisecond',
                'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    END AS updated_at_iso,
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

_MESSAGE = "m.j -> 'message'"

MESSAGES_VIEW = f"""
CREATE OR REPLACE VIEW messages AS
-- One row per `message` entry of every current (not superseded) transcript: live
-- transcripts and archives alike (filter on transcript_kind). `text` joins the text blocks
-- of message.content (or the string content; the summary of branch/compaction summaries;
-- command and output of bash executions); `tool_names` lists the toolCall names of an
-- assistant message, or the toolName of a tool result. Damaged lines are not messages.
SELECT
    m.line_pk,
    t.agent_id,
    (SELECT e.session_key FROM session_entries AS e
     WHERE e.agent_id = t.agent_id AND e.session_id = t.session_id
     ORDER BY e.updated_at DESC NULLS LAST LIMIT 1) AS session_key,
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
            coalesce({_MESSAGE} ->> 'command', '') || E'\\n'
            || coalesce({_MESSAGE} ->> 'output', '')
        WHEN jsonb_typeof({_MESSAGE} -> 'content') = 'string' THEN
            {_MESSAGE} ->> 'content'
        WHEN jsonb_typeof({_MESSAGE} -> 'content') = 'array' THEN
            (SELECT string_agg(b.value ->> 'text', E'\\n' ORDER BY b.n)
             FROM jsonb_array_elements({_MESSAGE} -> 'content') WITH ORDINALITY AS b(value, n)
             WHERE jsonb_typeof(b.value) = 'object' AND b.value ->> 'type' = 'text')
        ELSE {_MESSAGE} ->> 'summary'
    END AS text,
    coalesce(
        (SELECT string_agg(b.value ->> 'name', ',' ORDER BY b.n)
         FROM jsonb_array_elements(
             CASE WHEN jsonb_typeof({_MESSAGE} -> 'content') = 'array'
                  THEN {_MESSAGE} -> 'content' END) WITH ORDINALITY AS b(value, n)
         WHERE jsonb_typeof(b.value) = 'object' AND b.value ->> 'type' = 'toolCall'),
        {_MESSAGE} ->> 'toolName'
    ) AS tool_names,
    {_MESSAGE} ->> 'toolCallId' AS tool_call_id,
    {_boolean(_MESSAGE + " -> 'isError'")} AS is_error,
    {_MESSAGE} ->> 'provider' AS provider,
    {_MESSAGE} ->> 'model' AS model,
    {_MESSAGE} ->> 'stopReason' AS stop_reason,
    {_number(_MESSAGE + " -> 'usage' -> 'input'")} AS input_tokens,
    {_number(_MESSAGE + " -> 'usage' -> 'output'")} AS output_tokens,
    {_number(_MESSAGE + " -> 'usage' -> 'cacheRead'")} AS cache_read_tokens,
    {_number(_MESSAGE + " -> 'usage' -> 'cacheWrite'")} AS cache_write_tokens,
    {_number(_MESSAGE + " -> 'usage' -> 'totalTokens'")} AS total_tokens,
    {_number(_MESSAGE + " -> 'usage' -> 'cost' -> 'total'")} AS cost,
    m.byte_size
FROM (
    SELECT l.*, entry_line_json(l.line) AS j
    FROM transcript_lines AS l
    WHERE l.kind = 'entry' AND l.type = 'message'
) AS m
JOIN transcripts AS t ON t.transcript_id = m.transcript_id AND t.superseded_by IS NULL
WHERE m.j IS NOT NULL
"""

ACTIVE_PATH_VIEW = """
CREATE OR REPLACE VIEW active_path AS
-- The active path of every current transcript: from its leaf (transcripts.leaf_pos, the last
-- entry in file order) up through parent_pos to the root. depth 0 is the leaf; order by
-- depth DESC for root -> leaf. parent_pos always points to an earlier line, so the walk
-- ends; the `<` test keeps that true even on a hand-edited database. `line` is the line's
-- text, `line_bytes` its bytes when it is not UTF-8 text (one of the two is set).
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
    l.line,
    l.line_bytes
FROM walk AS w
JOIN transcript_lines AS l ON l.transcript_id = w.transcript_id AND l.pos = w.pos
JOIN transcripts AS t ON t.transcript_id = w.transcript_id
"""

RESOLVED_LABELS_VIEW = f"""
CREATE OR REPLACE VIEW resolved_labels AS
-- Entry labels as pi resolves them (labelsById): per transcript and target entry, the last
-- `label` entry in file order wins; an empty or missing label clears the target. Label
-- entries whose targetId is not a string are ignored. Current transcripts only.
WITH label_entries AS (
    SELECT x.transcript_id, x.pos, x.entry_id, x.timestamp,
           {_string("x.j -> 'targetId'")} AS target_id,
           {_string("x.j -> 'label'")} AS label
    FROM (
        SELECT transcript_id, pos, entry_id, timestamp, entry_line_json(line) AS j
        FROM transcript_lines
        WHERE kind = 'entry' AND type = 'label'
    ) AS x
    WHERE x.j IS NOT NULL
),
latest AS (
    SELECT transcript_id, target_id, max(pos) AS pos FROM label_entries
    WHERE target_id IS NOT NULL
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
WHERE le.label <> ''
"""

_USAGE = "u.j -> 'message' -> 'usage'"

SESSION_STATS_VIEW = f"""
CREATE OR REPLACE VIEW session_stats AS
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
       AND o.transcript_id IS DISTINCT FROM s.transcript_id) AS other_transcripts,
    (SELECT coalesce(sum(o.byte_size), 0) FROM transcripts AS o
     WHERE o.agent_id = s.agent_id AND o.session_id = s.session_id
       AND o.transcript_id IS DISTINCT FROM s.transcript_id) AS other_transcript_bytes,
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
        count(*) FILTER (WHERE u.role = 'user') AS user_messages,
        count(*) FILTER (WHERE u.role = 'assistant') AS assistant_messages,
        count(*) FILTER (WHERE u.role = 'toolResult') AS tool_results,
        sum({_number(_USAGE + " -> 'input'")}) AS input_tokens,
        sum({_number(_USAGE + " -> 'output'")}) AS output_tokens,
        sum({_number(_USAGE + " -> 'cacheRead'")}) AS cache_read_tokens,
        sum({_number(_USAGE + " -> 'cacheWrite'")}) AS cache_write_tokens,
        sum({_number(_USAGE + " -> 'totalTokens'")}) AS total_tokens,
        sum({_number(_USAGE + " -> 'cost' -> 'total'")}) AS cost
    FROM (
        SELECT l.transcript_id, l.role,
               CASE WHEN l.role = 'assistant' THEN entry_line_json(l.line) END AS j
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

VIEW_STATEMENTS: tuple[str, ...] = (LINE_JSON_FUNCTION, *VIEWS.values())
VIEW_DROP_STATEMENTS: tuple[str, ...] = (
    *(f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEWS)),
    "DROP FUNCTION IF EXISTS entry_line_json(text)",
)

SEARCH_STATEMENTS: tuple[str, ...] = (
    TRGM_EXTENSION,
    SEARCH_TEXT_FUNCTION,
    SEARCH_INDEX,
    ENTRY_SEARCH_TEXT_VIEW,
)
SEARCH_DROP_STATEMENTS: tuple[str, ...] = (
    "DROP VIEW IF EXISTS entry_search_text",
    f"DROP INDEX IF EXISTS {LINE_INDEX_NAME}",
    "DROP FUNCTION IF EXISTS entry_search_text(text)",
)

# --- the console's read-only role -------------------------------------------------------------

READER_ROLE = "store_sql_reader"
"""The role `store-sql sql` runs every statement as (admin/pg_console.py): it may read every
table and view of the store's schema and nothing else."""

# Run by the schema's owner after the tables exist. Creating a role needs CREATEROLE (or a
# superuser); where the server does not allow it, or the owner may not grant the role to
# itself, the block says so in a NOTICE and the console runs in a READ ONLY transaction
# alone, and says so. Tables created later by the same owner are granted by the default
# privileges.
READER_ROLE_GRANTS = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER_ROLE}') THEN
        BEGIN
            CREATE ROLE {READER_ROLE} NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'store_sql: cannot create the role {READER_ROLE} (needs CREATEROLE); '
                'store-sql sql runs in a READ ONLY transaction only';
            RETURN;
        END;
    END IF;
    BEGIN
        EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema())
            || ' TO {READER_ROLE}';
        EXECUTE 'GRANT SELECT ON ALL TABLES IN SCHEMA ' || quote_ident(current_schema())
            || ' TO {READER_ROLE}';
        EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA ' || quote_ident(current_schema())
            || ' GRANT SELECT ON TABLES TO {READER_ROLE}';
        IF NOT pg_has_role(current_user, '{READER_ROLE}', 'MEMBER') THEN
            EXECUTE 'GRANT {READER_ROLE} TO ' || quote_ident(current_user);
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'store_sql: cannot grant the role {READER_ROLE} (%); store-sql sql '
            'runs in a READ ONLY transaction only', SQLERRM;
    END;
END
$$
"""
