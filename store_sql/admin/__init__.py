"""Read-only maintainer tools that open SQLite themselves, never through `Store.open`: the SQL
console, stats, doctor and the WAL-side probes."""
