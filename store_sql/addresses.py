"""How callers address what the store holds: agent ids, session keys, session ids and
transcript targets, each checked on the caller's side before any work is queued.

Agent ids and session ids name directories and files on export, so they keep the shapes the
gateway writes; session keys are opaque strings (docs/FORMATS.md, sections 1 and 2).
"""

from __future__ import annotations

import re
from typing import Final

from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats.sqltext import storable

Target = str | int
"""A transcript: a session id (its live transcript), or a transcript id from `info()`."""

LEAF: Final = "<leaf>"
"""The parent of an appended entry when none is named: the transcript's current leaf (the
default of every append)."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The integers SQLite stores; a bigger Python int cannot even be bound to a statement."""


def check_int(name: str, value: int | None, *, minimum: int = INT64_MIN) -> int | None:
    """An integer argument (None passes) that SQLite can compare with, or InvalidEntryError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= INT64_MAX:
        raise InvalidEntryError(
            f"{name} must be an integer from {minimum} to {INT64_MAX}, got {value!r}"
        )
    return value


def check_target(target: Target) -> Target:
    """A transcript target: a str, or an int no bool; InvalidEntryError otherwise. An int
    past 64 bits names no transcript (ids are 64-bit; neither driver can bind it), so it is
    NotFoundError, as an unused id is."""
    if isinstance(target, bool) or not isinstance(target, str | int):
        raise InvalidEntryError(
            f"a transcript is named by a session id (str) or a transcript_id (int), "
            f"got {type(target).__name__} {target!r}"
        )
    if isinstance(target, int) and not INT64_MIN <= target <= INT64_MAX:
        raise NotFoundError(f"no transcript with id {target}")
    return target


_AGENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_agent_id(agent_id: str) -> str:
    """Agent ids name directories on export, so only the gateway's safe shape is accepted."""
    if not isinstance(agent_id, str) or not _AGENT_ID.fullmatch(agent_id):
        raise InvalidEntryError(
            f"invalid agent id {agent_id!r}: use 1-64 lowercase letters, digits, '_' or '-' "
            "starting with a letter or digit (the gateway's default is 'main')"
        )
    return agent_id


def check_session_key(key: str) -> str:
    if not isinstance(key, str) or key == "":
        raise InvalidEntryError(f"invalid session key {key!r}: a non-empty string is required")
    if not storable(key):
        raise InvalidEntryError(
            f"invalid session key {key!r}: it holds a lone surrogate, which SQLite text cannot "
            "store; use a well-formed Unicode key"
        )
    return key


MAX_SESSION_ID_BYTES = 128
"""The gateway's own ids are at most 128 characters; the store derives file names up to ~90
bytes longer (``<id>.checkpoint.<uuid>.jsonl`` and its archives), which must stay within
the file system's 255 bytes."""


def check_session_id(session_id: str) -> str:
    """A session id names the transcript file `<sessionId>.jsonl`, so it must be a plain
    file-name part that every file derived from it can be written with: the gateway's ids
    are UUIDs."""
    if (
        not isinstance(session_id, str)
        or session_id in ("", ".", "..")
        or any(c in session_id for c in "/\\\0")
        or not storable(session_id)
        or any(ord(c) < 0x20 or c == "\x7f" for c in session_id)
        or len(session_id.encode("utf-8")) > MAX_SESSION_ID_BYTES
    ):
        raise InvalidEntryError(
            f"invalid session id {session_id!r}: it names files, so it must be non-empty, "
            f"at most {MAX_SESSION_ID_BYTES} bytes of UTF-8, and hold no '/', '\\', control "
            "character (newline, NUL, ...) or lone surrogate (the gateway uses UUIDs)"
        )
    return session_id
