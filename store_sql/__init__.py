"""store_sql: a SQLite-backed session and transcript store for AI-agent gateways.

The public API is what this module exports; everything else is private and may change.
"""

from store_sql.context import SessionContext
from store_sql.engine.pragmas import EngineSettings
from store_sql.errors import (
    DatabaseRefusedError,
    ExportRefusedError,
    ImportFailedError,
    InvalidEntryError,
    NotFoundError,
    StoreClosedError,
    StoreError,
    WriteFailedError,
)
from store_sql.sessions import SessionSummary
from store_sql.store import Store
from store_sql.transcript_reads import Changes, Cursor, StoredEntry, TranscriptCounts, TreeNode
from store_sql.transcripts import LEAF, Appended, TranscriptInfo

__all__ = [
    "LEAF",
    "Appended",
    "Changes",
    "Cursor",
    "DatabaseRefusedError",
    "EngineSettings",
    "ExportRefusedError",
    "ImportFailedError",
    "InvalidEntryError",
    "NotFoundError",
    "SessionContext",
    "SessionSummary",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoredEntry",
    "TranscriptCounts",
    "TranscriptInfo",
    "TreeNode",
    "WriteFailedError",
]
