"""A statement that named a string no stored row can hold finds nothing.

No PostgreSQL text holds NUL (U+0000): the server refuses to bind it (SQLSTATE 22021).
No database text holds a lone surrogate (U+D800..U+DFFF alone): UTF-8 cannot encode one, so
both drivers refuse to bind it (sqlite3's UnicodeEncodeError, asyncpg's DataError caused by
one). Every key, id and name the store writes is checked to be storable first, so a call
naming such a string names nothing stored: the answer SQLite and PostgreSQL both give for an
unknown name (NotFoundError), never the driver's error."""

from __future__ import annotations

from store_sql.errors import NotFoundError


def lone_surrogate_lookup(exc: BaseException) -> NotFoundError | None:
    """The error for a statement that bound a string holding a lone surrogate; None for
    every other failure."""
    cause = exc if isinstance(exc, UnicodeEncodeError) else exc.__cause__
    if not (isinstance(cause, UnicodeEncodeError) and cause.reason == "surrogates not allowed"):
        return None
    err = NotFoundError(
        "a key, id or name holds a lone surrogate, which database text cannot hold, so "
        "nothing stored has it"
    )
    err.__cause__ = exc
    return err


_CHARACTER_NOT_IN_REPERTOIRE = "22021"


def unstorable_lookup(exc: BaseException) -> NotFoundError | None:
    """The error for a statement that bound a string no stored row can hold: one holding a
    lone surrogate, or on PostgreSQL one holding NUL. None for every other failure."""
    if getattr(exc, "sqlstate", None) != _CHARACTER_NOT_IN_REPERTOIRE:
        return lone_surrogate_lookup(exc)
    err = NotFoundError(
        "a key, id or name holds a NUL character (U+0000), which PostgreSQL text cannot "
        "hold, so nothing stored has it"
    )
    err.__cause__ = exc
    return err
