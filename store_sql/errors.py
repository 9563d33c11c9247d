"""The error hierarchy: every error store_sql raises on purpose is a `StoreError`."""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error store_sql raises on purpose."""


class DatabaseRefusedError(StoreError):
    """The file is not a store_sql database we may open (foreign, corrupt or too new).

    The file is left exactly as it was."""


class StoreClosedError(StoreError):
    """The store was closed; open a new one."""


class InvalidEntryError(StoreError, ValueError):
    """A session entry or patch does not have the shape the gateway requires."""


class NotFoundError(StoreError, LookupError):
    """A session key, transcript, entry or checkpoint does not exist."""


class WriteFailedError(StoreError):
    """SQLite refused a write (disk full, I/O error, lock wait exhausted).

    Only the caller whose write failed sees this; earlier acknowledged writes are kept."""


class ImportFailedError(StoreError):
    """A source could not be imported; the message names the file, line and reason."""


class ExportRefusedError(StoreError):
    """An export would write outside its target directory or over something it must not."""


class CopyFailedError(StoreError):
    """`store-sql copy` could not copy or verify a store; the source is never changed."""


class DamagedIndexError(StoreError):
    """The agent's imported sessions.json could not be read, so its sessions are not in the
    store: a write would replace the whole file. Recover it first (`sessions.recover`)."""


class DatabaseCorruptError(StoreError):
    """SQLite found a damaged page ("database disk image is malformed"). The message names
    the file and the next step: `store-sql doctor`, a backup, or `sqlite3 FILE .recover`."""


class ConflictError(StoreError):
    """An expected state did not hold: the entry's `sessionId`, `updatedAt` or version was
    not the one the caller read, or it exists (or is missing) against the expectation.

    Nothing was written; read again and retry (compare-and-swap)."""


class BackendNotSupportedError(StoreError):
    """The store is on PostgreSQL and this part of the API is not there yet; the message
    names it ("store.transcripts is not on PostgreSQL yet"). Nothing was read or written."""

    @classmethod
    def not_yet(cls, what: str) -> BackendNotSupportedError:
        """The error for `what` (a namespace, method or command) not on PostgreSQL yet."""
        return cls(f"{what} is not on PostgreSQL yet (docs/POSTGRES.md)")
