"""Telling a PostgreSQL URL from a path, and showing one without its password."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

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


def split_password(url: str) -> tuple[str, str | None]:
    """`url` without its password, and the password (None when it has none): for handing a
    URL to a libpq program, whose arguments any user on the host can read, with the password
    in its environment (PGPASSWORD) instead."""
    password: str | None = None
    found = _PASSWORD_PART.match(url)
    if found:
        password = unquote(found.group("password"))
        url = found.group("head") + "@" + url[found.end() :]
    query = _QUERY_PASSWORD_VALUE.search(url)
    if query:
        password = unquote(query.group("password"))
        kept_separator = query.group("sep") if query.group("rest") else ""
        url = url[: query.start()] + kept_separator + url[query.end() :]
    return url, password


_PASSWORD_PART = re.compile(r"^(?P<head>[a-z]+://[^:@/?#]*):(?P<password>[^@/?#]*)@", re.I)
_QUERY_PASSWORD_VALUE = re.compile(
    r"(?P<sep>[?&])password=(?P<password>[^&#]*)(?P<rest>&?)", re.IGNORECASE
)
