"""store_sql: a SQLite-backed session and transcript store for AI-agent gateways."""
