"""The service's one error shape, `{"error": {"code", "message"}}`, and where each comes from.

| code | status | when |
|---|---|---|
| INVALID | 400 (405: a method the path does not take) | a body, parameter or header is wrong |
| UNAUTHORIZED | 401 | no token, or not the server's |
| NOT_FOUND | 404 | no such route, agent, session, transcript, entry or checkpoint |
| CONFLICT | 409 | an expected value did not hold, or the index is damaged (recover it) |
| TOO_LARGE | 413 | the request body is over the server's limit |
| BUSY | 503 + Retry-After | the writer's queue is full, a write failed, or the server stops |

Anything else a handler raises is a fault of the server, never of the request: it is logged
with its traceback and answered `500 {"error": {"code": "INTERNAL", ...}}` without one.
"""

from __future__ import annotations

import logging
from typing import Final

import msgspec

from store_sql.errors import (
    ConflictError,
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
from store_sql.formats.jsjson import JSONSyntaxError

log = logging.getLogger("store_sql.service")

STATUS: Final = {
    "INVALID": 400,
    "UNAUTHORIZED": 401,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "TOO_LARGE": 413,
    "BUSY": 503,
    "INTERNAL": 500,
}
RETRY_AFTER_SECONDS: Final = 1


class ApiError(Exception):
    """An answer other than success, with its code (a key of STATUS) and one-line message."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = STATUS[code] if status is None else status


def from_exception(exc: BaseException) -> ApiError:
    """The ApiError a raised exception answers as."""
    if isinstance(exc, ApiError):
        return exc
    message = _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, ConflictError | DamagedIndexError):
        # A damaged index refuses changes until it is recovered: the state, not the
        # request, is in the way.
        return ApiError("CONFLICT", message)
    if isinstance(exc, DatabaseCorruptError):
        log.error("database corrupt: %s", message)
        return ApiError("INTERNAL", message)
    if isinstance(exc, NotFoundError):
        return ApiError("NOT_FOUND", message)
    if isinstance(exc, WriteFailedError | StoreClosedError):
        return ApiError("BUSY", message)
    if isinstance(exc, InvalidEntryError | ImportFailedError | ExportRefusedError):
        return ApiError("INVALID", message)
    if isinstance(exc, DatabaseRefusedError):
        return ApiError("INVALID", message)
    if isinstance(exc, JSONSyntaxError | msgspec.ValidationError | msgspec.DecodeError):
        return ApiError("INVALID", message)
    if isinstance(exc, StoreError):
        return ApiError("INVALID", message)
    # jsjson's refusals of values JSON.stringify cannot write (and of wrong argument types
    # in the library's checks) are the request's fault.
    if isinstance(exc, TypeError | ValueError | RecursionError):
        return ApiError("INVALID", message)
    log.error("internal error", exc_info=exc)
    return ApiError("INTERNAL", f"internal error ({type(exc).__name__}); see the server's log")


def error_body(error: ApiError) -> bytes:
    return msgspec.json.encode({"error": {"code": error.code, "message": error.message}})


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
