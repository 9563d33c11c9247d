"""Request bodies: read within the size limit, parsed as `JSON.parse` would, checked by shape.

Each body has a msgspec Struct: it checks the shape (precise messages such as "Expected
`array`, got `int` - at `$.entries`") and gives the OpenAPI document its schema. Values
inside entries and patches are parsed exactly as the gateway's `JSON.parse` reads them, then
written by the store as `JSON.stringify` would: integers past 2**53 become the doubles
JavaScript makes of them, lone surrogates are kept. msgspec parses the common body in one
pass; a body with a run of 16 digits or that msgspec refuses takes the careful path (the
standard library's parser with JavaScript's number rules), which also words the errors.
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal, TypeVar

import msgspec
from msgspec import UNSET, Struct, UnsetType

from store_sql.service.http_errors import ApiError

T = TypeVar("T")

DEFAULT_MAX_BODY: Final = 32 * 1024 * 1024
"""32 MiB: a transcript line can carry images as base64; `--max-body` changes it."""

_DIGITS_AS_ZERO: Final = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
"""Every digit byte as `0`, every other byte as a space."""
_SIXTEEN_DIGITS: Final = b"0" * 16


def _has_long_number(body: bytes) -> bool:
    """Whether the body holds a run of 16 digits (a number JavaScript may not hold exactly).
    A byte translation and a substring search run in C, several times faster than a regular
    expression trying a digit class at every position."""
    return _SIXTEEN_DIGITS in body.translate(_DIGITS_AS_ZERO)


def _js_int(source: str) -> Any:
    if len(source) < 16:
        return int(source)
    value = int(source)
    return value if abs(value) < 2**53 else float(source)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JS_DECODER: Final = json.JSONDecoder(parse_int=_js_int, parse_constant=_reject_constant)


def parse_json(body: bytes) -> Any:
    """The body as JSON.parse reads it (numbers as JavaScript's doubles)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("INVALID", f"the body is not UTF-8 (byte {exc.start})") from exc
    try:
        return _JS_DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            "INVALID", f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise ApiError("INVALID", f"the body is not JSON: {exc}") from exc


def decode(body: bytes, shape: type[T]) -> T:
    """The body checked against `shape` (a Struct), or ApiError INVALID saying where."""
    if not body:
        raise ApiError("INVALID", "a JSON body is required")
    if not _has_long_number(body):
        try:
            return msgspec.json.decode(body, type=shape)
        except msgspec.ValidationError as exc:
            raise ApiError("INVALID", f"bad body: {exc}") from exc
        except msgspec.DecodeError:
            pass  # the careful path words the error, or accepts what JSON.parse accepts
    value = parse_json(body)
    try:
        return msgspec.convert(value, shape)
    except msgspec.ValidationError as exc:
        raise ApiError("INVALID", f"bad body: {exc}") from exc


def decode_object(body: bytes) -> dict[str, Any]:
    """A body that must be one JSON object (an entry, a patch)."""
    if not body:
        raise ApiError("INVALID", "a JSON object body is required")
    value: Any = None
    if not _has_long_number(body):
        try:
            value = msgspec.json.decode(body)
        except msgspec.DecodeError:
            value = None
    if value is None:
        value = parse_json(body)
    if not isinstance(value, dict):
        raise ApiError("INVALID", f"the body must be a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# --- body shapes ------------------------------------------------------------------------------


class ExpectBody(Struct, rename="camel", forbid_unknown_fields=True):
    """What the entry must be for the write to happen (409 CONFLICT otherwise)."""

    session_id: str | UnsetType = UNSET
    updated_at: int | float | UnsetType = UNSET
    version: str | UnsetType = UNSET
    """The entry's ETag (without quotes)."""
    exists: bool | UnsetType = UNSET
    """false: only when there is no entry yet."""


class PatchBody(Struct, rename="camel", forbid_unknown_fields=True):
    """PATCH with a guard: `{"patch": {...}, "expect": {...}}` (a body without `patch` is the
    patch itself)."""

    patch: dict[str, Any]
    expect: ExpectBody | UnsetType = UNSET


class PutBody(Struct, rename="camel", forbid_unknown_fields=True):
    """PUT with a guard: `{"entry": {...}, "expect": {...}}` (a body without `entry` is the
    entry itself)."""

    entry: dict[str, Any]
    expect: ExpectBody | UnsetType = UNSET


class TouchBody(Struct, rename="camel", forbid_unknown_fields=True):
    updated_at: int | UnsetType = UNSET
    """Epoch ms; now when left out."""
    expect: ExpectBody | UnsetType = UNSET


class DeleteBody(Struct, rename="camel", forbid_unknown_fields=True):
    expect: ExpectBody | UnsetType = UNSET
    archive: bool = False
    """Also archive the transcript as `<file>.deleted.<time>` (the gateway's delete)."""


class BatchOp(Struct, rename="camel", forbid_unknown_fields=True):
    op: Literal["patch", "put", "delete", "touch"]
    key: str
    patch: dict[str, Any] | UnsetType = UNSET
    entry: dict[str, Any] | UnsetType = UNSET
    updated_at: int | UnsetType = UNSET
    expect: ExpectBody | UnsetType = UNSET


class BatchBody(Struct, rename="camel", forbid_unknown_fields=True):
    ops: list[BatchOp]


class CreateTranscriptBody(Struct, rename="camel", forbid_unknown_fields=True):
    cwd: str
    parent_session: str | UnsetType | None = UNSET
    timestamp: str | UnsetType | None = UNSET


class AppendBody(Struct, rename="camel", forbid_unknown_fields=True):
    """Entries appended as a chain below the leaf, below `parentId`, or (null) as a new root."""

    entries: list[dict[str, Any]]
    parent_id: str | UnsetType | None = UNSET


class TurnBody(Struct, rename="camel", forbid_unknown_fields=True):
    """A turn: entries appended and the entry updated in one transaction."""

    entries: list[dict[str, Any]]
    updated_at: int | UnsetType = UNSET
    """Epoch ms for the entry's updatedAt; now when left out."""
    fields: dict[str, Any] | UnsetType = UNSET
    """Other entry fields to merge (null removes one)."""
    expect_session_id: str | UnsetType = UNSET
    parent_id: str | UnsetType | None = UNSET


class ResetBody(Struct, rename="camel", forbid_unknown_fields=True):
    cwd: str | UnsetType = UNSET
    keep_fields: list[str] = []
    expect: ExpectBody | UnsetType = UNSET


class CheckpointForkBody(Struct, rename="camel", forbid_unknown_fields=True):
    """Branch (a new session) or restore (the same key) from a checkpoint."""

    new_key: str | UnsetType = UNSET
    cwd: str | UnsetType = UNSET


class PolicyBody(Struct, rename="camel", forbid_unknown_fields=True):
    """The gateway's maintenance settings; durations like "30d", sizes like "2gb"."""

    mode: Literal["warn", "enforce"] = "warn"
    prune_after: str = "30d"
    max_entries: int = 500
    max_disk_bytes: str | None = None
    high_water_bytes: str | None = None
    archive_retention: str | UnsetType | None = UNSET
    """Defaults to pruneAfter; null keeps archives."""


class CleanupBody(Struct, rename="camel", forbid_unknown_fields=True):
    policy: PolicyBody = msgspec.field(default_factory=PolicyBody)
    active_key: str | UnsetType = UNSET
    dry_run: bool = False


class ImportBody(Struct, rename="camel", forbid_unknown_fields=True):
    """A path on the server's machine: a state dir, a sessions dir or one file."""

    path: str
    agent: str | UnsetType = UNSET
    dry_run: bool = False


class ExportBody(Struct, rename="camel", forbid_unknown_fields=True):
    """A directory on the server's machine to export the agent's files into."""

    out: str
    durable: bool = False


BODY_SHAPES: Final[tuple[type[Struct], ...]] = (
    ExpectBody,
    PatchBody,
    PutBody,
    TouchBody,
    DeleteBody,
    BatchOp,
    BatchBody,
    CreateTranscriptBody,
    AppendBody,
    TurnBody,
    ResetBody,
    CheckpointForkBody,
    PolicyBody,
    CleanupBody,
    ImportBody,
    ExportBody,
)
