"""Telling a PostgreSQL URL from a path, and showing one without its password."""

from __future__ import annotations

import os
import re

SCHEMES = ("postgresql://", "postgres://")
"""What a database location starts with when it names a PostgreSQL server (libpq's URIs)."""


def is_postgres_url(location: str | os.PathLike[str]) -> bool:
    """True when `location` is a PostgreSQL URL rather than a path to a SQLite file."""
    return isinstance(location, str) and location.lower().startswith(SCHEMES)


_PASSWORD = re.compile(r"^(?P<head>[a-z]+://[^:@/?#]*):[^@/?#]*@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def mask_password(url: str) -> str:
    """`url` with its password (in the user part or a `password=` parameter) shown as ***."""
    masked = _PASSWORD.sub(r"\g<head>:***@", url)
    return _QUERY_PASSWORD.sub(r"\g<key>***", masked)
