"""The database schema: SQLAlchemy Core tables (the source of truth for Alembic) and the SQL
Core cannot describe (full-text index, triggers, views)."""
