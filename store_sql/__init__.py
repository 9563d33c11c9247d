"""store_sql: a SQLite-backed session and transcript store for AI-agent gateways.

The public API is what this module exports; everything else is private and may change. Each
exported class and function says `store_sql` as its module, so users, reprs and tracebacks
see one package whatever folder holds the code.

Errors, all raised on purpose:

    StoreError
    ├── DatabaseRefusedError    the file is not a store_sql database we may open
    ├── BackendNotSupportedError  this part of the API is not on PostgreSQL yet
    ├── DatabaseCorruptError    SQLite met a damaged page; the message says what to do next
    ├── InvalidEntryError       bad arguments or entries, refused before anything is queued
    ├── NotFoundError           no such agent, session, transcript, entry or checkpoint
    ├── ConflictError           an expected state did not hold; nothing was written
    ├── DamagedIndexError       a write to an index whose sessions.json could not be read
    ├── StoreClosedError        the store was closed
    ├── WriteFailedError        SQLite refused a write (locked, full, read-only)
    ├── ImportFailedError       an import could not go on
    ├── ExportRefusedError      a stored name cannot be written safely
    └── CopyFailedError         a store copy could not complete or did not verify
"""

from store_sql.checkpoints.entries import CheckpointSpec, Persisted
from store_sql.checkpoints.forks import ForkResult
from store_sql.checkpoints.snapshots import CapturedSnapshot
from store_sql.copy.api import CopyProgress, CopyReport, copy_store
from store_sql.engine.pragmas import EngineSettings
from store_sql.errors import (
    BackendNotSupportedError,
    ConflictError,
    CopyFailedError,
    DamagedIndexError,
    DatabaseCorruptError,
    DatabaseRefusedError,
    ExportRefusedError,
    ImportFailedError,
    InvalidEntryError,
    NotFoundError,
    StoreClosedError,
    StoreError,
    WriteFailedError,
)
from store_sql.exporter.api import ExportReport, export_transcript, export_tree
from store_sql.exporter.digests import FileDigest, export_digests
from store_sql.exporter.pre_migration import export_pre_migration
from store_sql.exporter.verify import VerifyReport, verify_tree
from store_sql.importer.api import import_path
from store_sql.importer.report import DatabaseReport, ImportProgress, ImportReport
from store_sql.lifecycle.rows import DeleteResult, PurgeResult, ResetResult
from store_sql.maintenance.plan import CleanupPlan
from store_sql.maintenance.policy import MaintenancePolicy
from store_sql.search.query import SearchHit, SearchResult
from store_sql.sessions.guards import EntryText, Expect, SessionOp, SessionOpResult
from store_sql.sessions.recovery import IndexRecovery
from store_sql.sessions.rows import SessionSummary
from store_sql.sessions.turns import TurnResult
from store_sql.store import Store
from store_sql.transcripts.appends import LEAF, Appended
from store_sql.transcripts.context import SessionContext
from store_sql.transcripts.reads import Changes, Cursor, StoredEntry, TranscriptCounts, TreeNode
from store_sql.transcripts.rows import TranscriptInfo

__all__ = [
    "LEAF",
    "Appended",
    "BackendNotSupportedError",
    "CapturedSnapshot",
    "Changes",
    "CheckpointSpec",
    "CleanupPlan",
    "ConflictError",
    "CopyFailedError",
    "CopyProgress",
    "CopyReport",
    "Cursor",
    "DamagedIndexError",
    "DatabaseCorruptError",
    "DatabaseRefusedError",
    "DatabaseReport",
    "DeleteResult",
    "EngineSettings",
    "EntryText",
    "Expect",
    "ExportRefusedError",
    "ExportReport",
    "FileDigest",
    "ForkResult",
    "ImportFailedError",
    "ImportProgress",
    "ImportReport",
    "IndexRecovery",
    "InvalidEntryError",
    "MaintenancePolicy",
    "NotFoundError",
    "Persisted",
    "PurgeResult",
    "ResetResult",
    "SearchHit",
    "SearchResult",
    "SessionContext",
    "SessionOp",
    "SessionOpResult",
    "SessionSummary",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoredEntry",
    "TranscriptCounts",
    "TranscriptInfo",
    "TreeNode",
    "TurnResult",
    "VerifyReport",
    "WriteFailedError",
    "copy_store",
    "export_digests",
    "export_pre_migration",
    "export_transcript",
    "export_tree",
    "import_path",
    "verify_tree",
]

for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type) or callable(_public):
        _public.__module__ = "store_sql"
del _name, _public
