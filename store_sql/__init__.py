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

Importing the package is cheap: a public name's module is imported when the name is first
used (PEP 562), so a command loads only what it needs and `store-sql` starts quickly.
"""

from __future__ import annotations

import importlib

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

TYPE_CHECKING = False  # typing's own, without importing typing at start-up
if TYPE_CHECKING:
    from typing import Any

    from store_sql.addresses import LEAF
    from store_sql.checkpoints.entries import CheckpointSpec, Persisted
    from store_sql.checkpoints.forks import ForkResult
    from store_sql.checkpoints.snapshots import CapturedSnapshot
    from store_sql.copy.api import CopyProgress, CopyReport, copy_store
    from store_sql.engine.pragmas import EngineSettings
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
    from store_sql.transcripts.appends import Appended
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

# The module of each public name (not errors): a new public name goes here, in the imports
# for type checkers above, and in __all__ (tests/test_layout.py checks every name resolves).
_HOMES = {
    "LEAF": "store_sql.addresses",
    "CheckpointSpec": "store_sql.checkpoints.entries",
    "Persisted": "store_sql.checkpoints.entries",
    "ForkResult": "store_sql.checkpoints.forks",
    "CapturedSnapshot": "store_sql.checkpoints.snapshots",
    "CopyProgress": "store_sql.copy.api",
    "CopyReport": "store_sql.copy.api",
    "copy_store": "store_sql.copy.api",
    "EngineSettings": "store_sql.engine.pragmas",
    "ExportReport": "store_sql.exporter.api",
    "export_transcript": "store_sql.exporter.api",
    "export_tree": "store_sql.exporter.api",
    "FileDigest": "store_sql.exporter.digests",
    "export_digests": "store_sql.exporter.digests",
    "export_pre_migration": "store_sql.exporter.pre_migration",
    "VerifyReport": "store_sql.exporter.verify",
    "verify_tree": "store_sql.exporter.verify",
    "import_path": "store_sql.importer.api",
    "DatabaseReport": "store_sql.importer.report",
    "ImportProgress": "store_sql.importer.report",
    "ImportReport": "store_sql.importer.report",
    "DeleteResult": "store_sql.lifecycle.rows",
    "PurgeResult": "store_sql.lifecycle.rows",
    "ResetResult": "store_sql.lifecycle.rows",
    "CleanupPlan": "store_sql.maintenance.plan",
    "MaintenancePolicy": "store_sql.maintenance.policy",
    "SearchHit": "store_sql.search.query",
    "SearchResult": "store_sql.search.query",
    "EntryText": "store_sql.sessions.guards",
    "Expect": "store_sql.sessions.guards",
    "SessionOp": "store_sql.sessions.guards",
    "SessionOpResult": "store_sql.sessions.guards",
    "IndexRecovery": "store_sql.sessions.recovery",
    "SessionSummary": "store_sql.sessions.rows",
    "TurnResult": "store_sql.sessions.turns",
    "Store": "store_sql.store",
    "Appended": "store_sql.transcripts.appends",
    "SessionContext": "store_sql.transcripts.context",
    "Changes": "store_sql.transcripts.reads",
    "Cursor": "store_sql.transcripts.reads",
    "StoredEntry": "store_sql.transcripts.reads",
    "TranscriptCounts": "store_sql.transcripts.reads",
    "TreeNode": "store_sql.transcripts.reads",
    "TranscriptInfo": "store_sql.transcripts.rows",
}


def _say_store_sql(value: Any) -> None:
    if isinstance(value, type) or callable(value):
        value.__module__ = "store_sql"


for _name in __all__:
    if _name in globals():  # the errors, imported above; the rest when first used
        _say_store_sql(globals()[_name])
del _name


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'store_sql' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    _say_store_sql(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
