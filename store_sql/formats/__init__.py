"""Bytes <-> records, with no SQL: JavaScript-exact JSON, sessions.json, pi's transcript JSONL
(and why a damaged line is damaged), the names in a gateway state directory, zstd archives.
docs/FORMATS.md describes each format."""
