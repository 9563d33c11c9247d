"""The PostgreSQL engine: one writer connection per process with group commit, a pool of
read connections, and the opening checks (encoding, collation, schema revision).

asyncpg directly, not through SQLAlchemy (docs/POSTGRES.md has the measurements). Domain
code for PostgreSQL is `async fn(asyncpg.Connection)`, handed to `PgDatabase.write` or
`PgDatabase.read`, beside the SQLite function it twins (`sessions/pg_rows.py`, ...).
"""
