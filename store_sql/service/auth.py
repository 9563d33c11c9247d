"""Bearer-token auth: the token file, and checking a request's token in constant time.

The token file (`--token-file`, default `<db>.token`) holds one line: the token. When it is
missing the server creates it, mode 0600, with 32 random bytes in URL-safe base64; clients
on the same machine (the CLI, the gateway) read it from there. A token file others can read
is refused: it is the only key to the database's contents.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from store_sql.errors import StoreError

TOKEN_SUFFIX = ".token"  # noqa: S105 - a file name suffix, not a secret


class TokenFileError(StoreError):
    """The token file cannot be used (unreadable, empty, or readable by others)."""


def default_token_file(db: Path) -> Path:
    return db.with_name(db.name + TOKEN_SUFFIX)


def load_or_create_token(path: Path) -> str:
    """The token in `path`, creating the file (0600, a fresh random token) when missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path, check_mode=True)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def read_token(path: Path, *, check_mode: bool = False) -> str:
    """The token a token file holds (for clients: the CLI routing to a server)."""
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(f"cannot read the token file {path}: {exc.strerror}") from exc
    if check_mode and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(
            f"the token file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o});"
            f" run: chmod 600 {path}"
        )
    token = text.strip()
    if not token or not token.isascii() or any(c.isspace() for c in token):
        raise TokenFileError(f"the token file {path} must hold one token on one line")
    return token


class TokenCheck:
    """Compares the token of an `Authorization: Bearer <token>` header (the scheme in any
    case, as HTTP has it) with the server's token in constant time (hmac.compare_digest)."""

    __slots__ = ("_expected",)

    def __init__(self, token: str) -> None:
        self._expected = token.encode("ascii")

    def allows(self, header: bytes | None) -> bool:
        if header is None or header[:7].lower() != b"bearer ":
            return False
        return hmac.compare_digest(header[7:], self._expected)

    def allows_token(self, token: str | None) -> bool:
        """A token given without the header (the `access_token` query parameter a browser's
        EventSource must use, since it cannot set headers)."""
        if token is None:
            return False
        try:
            given = token.encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(given, self._expected)
