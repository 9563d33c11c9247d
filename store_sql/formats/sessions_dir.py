"""sessions.d, the directory-backed session index: names, file shapes, state, reading.

An agent's index may live in ``sessions/sessions.d/`` instead of ``sessions.json``
(docs/FORMATS.md §7): ``state.json`` holds a version stamp and ``entries/`` one file per
session key. Everything here follows the gateway's reader and writer rule for rule, so the
store sees exactly the sessions the gateway would see, and what it writes is what the
gateway would write. Files are only read here, never written; there is no SQL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from store_sql.formats import jsjson
from store_sql.formats.in_tree import open_child, open_child_dir, open_dir
from store_sql.formats.sessions_json import entry_text, validate_entry

__all__ = [
    "DIRECTORY_NAME",
    "ENTRIES_DIR",
    "STATE_FILE",
    "DirectoryState",
    "EntryFile",
    "ParsedDirectory",
    "active_state",
    "entry_file_name",
    "js_trim",
    "key_of_file_name",
    "key_refusal",
    "parse_state",
    "read_directory",
    "read_entry_file",
    "render_entry_file",
    "render_state",
]

DIRECTORY_NAME = "sessions.d"
ENTRIES_DIR = "entries"
STATE_FILE = "state.json"
STORE_KIND = "openclaw-session-store-directory"
LAYOUT_VERSION = 1
MAX_INLINE_KEY_BYTES = 120
_PREFIX = "session-"
_HASHED_PREFIX = "session-hash-"
_SUFFIX = ".json"
# Keys the gateway refuses to use as properties of its store object.
_BLOCKED_KEYS = frozenset({"__proto__", "constructor", "prototype"})
# String.prototype.trim: WhiteSpace (tab, VT, FF, space, NBSP, ZWNBSP, Unicode Zs) and
# LineTerminator (LF, CR, LS, PS). Python's str.strip differs (it strips \x1c-\x1f, \x85).
_JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_FRAME_OPEN = '{\n  "sessionKey": '
_FRAME_ENTRY = ',\n  "entry": '
_FRAME_CLOSE = "\n}"


def js_trim(text: str) -> str:
    """``text.trim()`` as JavaScript does it."""
    return text.strip(_JS_SPACE)


def _utf8(text: str) -> bytes:
    """``Buffer.from(text, "utf8")``: a lone surrogate becomes U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def entry_file_name(key: str) -> str:
    """The file name the gateway gives a session key's entry file.

    ``session-<base64url(utf8 key)>.json``, or ``session-hash-<base64url(sha256)>.json`` for
    keys over 120 UTF-8 bytes; the key is trimmed first. A blank key raises ValueError."""
    trimmed = js_trim(key)
    if not trimmed:
        raise ValueError("a session key must be a non-empty string")
    raw = _utf8(trimmed)
    if len(raw) > MAX_INLINE_KEY_BYTES:
        return f"{_HASHED_PREFIX}{_base64url(hashlib.sha256(raw).digest())}{_SUFFIX}"
    return f"{_PREFIX}{_base64url(raw)}{_SUFFIX}"


def key_of_file_name(name: str) -> str | None:
    """The key an inline name spells, or None (hashed names, dotfiles, names that do not
    decode to a key whose own name is exactly ``name``)."""
    if name.startswith(_HASHED_PREFIX) or name.startswith("."):
        return None
    if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
        return None
    encoded = name[len(_PREFIX) : -len(_SUFFIX)]
    # Only the canonical spelling can survive the re-encoding check below, so a strict
    # decoder gives the same answer as the gateway's lenient one.
    if not _BASE64URL.fullmatch(encoded) or len(encoded) % 4 == 1:
        return None
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not key or not js_trim(key) or entry_file_name(key) != name:
        return None
    return key


def key_refusal(key: str) -> str | None:
    """Why ``key`` cannot be written to a sessions.d faithfully, or None."""
    if key in _BLOCKED_KEYS:
        return f"the gateway ignores the session key {key!r} in a sessions.d"
    if js_trim(key) != key:
        return "the gateway trims session keys in a sessions.d, and this one has spaces at an end"
    return None


# --- state.json -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryState:
    """A valid state.json."""

    version: int
    updated_at: float


def parse_state(data: bytes) -> DirectoryState | None:
    """The state a state.json holds, or None when the gateway would not accept it."""
    try:
        value = jsjson.loads(data.decode("utf-8", errors="replace"))
    except jsjson.JSONSyntaxError:
        return None
    if not isinstance(value, dict):
        return None
    version: Any = value.get("version")
    updated_at: Any = value.get("updatedAt")
    layout: Any = value.get("layoutVersion")
    if value.get("kind") != STORE_KIND or not _is_number(layout) or layout != LAYOUT_VERSION:
        return None
    if not _is_number(version) or not float(version).is_integer() or version < 1:
        return None
    if not _is_number(updated_at) or not math.isfinite(updated_at):
        return None
    return DirectoryState(int(version), float(updated_at))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render_state(version: int, updated_at_ms: int) -> bytes:
    """state.json as the gateway writes it (``JSON.stringify(state, null, 2)``)."""
    state = {
        "kind": STORE_KIND,
        "layoutVersion": LAYOUT_VERSION,
        "version": version,
        "updatedAt": updated_at_ms,
    }
    return jsjson.dumps_bytes(state, indent=2)


def active_state(root: Path) -> tuple[DirectoryState | None, str]:
    """The state of ``root`` (a ``sessions.d``) when the gateway would use it, else None and
    why not: ``root`` and its ``entries/`` must be real directories (no symlinks) and
    state.json a regular file holding a valid state."""
    for folder in (root, root / ENTRIES_DIR):
        try:
            mode = os.lstat(folder).st_mode
        except OSError:
            return None, f"{folder.name} is missing"
        if not stat.S_ISDIR(mode):
            return None, f"{folder.name} is not a directory (or is a symlink)"
    state_path = root / STATE_FILE
    try:
        if not stat.S_ISREG(os.lstat(state_path).st_mode):
            return None, "state.json is not a regular file"
        data = state_path.read_bytes()
    except OSError:
        return None, "state.json is missing or unreadable"
    state = parse_state(data)
    if state is None:
        return None, "state.json is not a valid state"
    return state, ""


# --- entry files ------------------------------------------------------------------------------

Shape = Literal["document", "bare"]


@dataclass(frozen=True, slots=True)
class EntryFile:
    """One file of ``entries/`` and what the gateway makes of it."""

    name: str
    data: bytes
    sha256: str
    key: str | None
    """The session key it holds; None when the gateway ignores the file."""
    shape: Shape | None
    """document: ``{"sessionKey", "entry"}``; bare: the entry alone (key from the name)."""
    value: Any = None
    """The entry (a dict) when `key` is set."""
    text: str = ""
    """The entry as ``JSON.stringify`` writes it at depth 1 (what `render_entry_file` takes)."""
    problem: str | None = None
    """Why the entry is not a usable session entry (`sessions_json.validate_entry`)."""
    ignored: str | None = None
    """Why the gateway ignores the file."""
    canonical: bool = False
    """`render_entry_file(key, text)` reproduces `data` exactly."""
    parsed: bool = True
    """False for a file skipped as already known (`read_directory`'s `known`): only `name`,
    `data`, `sha256` and `key` are set."""


def read_entry_file(name: str, data: bytes) -> EntryFile:
    """Read one regular file of ``entries/`` as the gateway's loader does."""
    sha = hashlib.sha256(data).hexdigest()

    def ignored(reason: str) -> EntryFile:
        return EntryFile(name, data, sha, None, None, ignored=reason)

    if name.startswith("."):
        return ignored("dotfile")
    expected = key_of_file_name(name)
    if expected is None and not name.startswith(_HASHED_PREFIX):
        return ignored("name is not session-<base64url key>.json")
    raw = data.decode("utf-8", errors="replace")  # as readFileSync(path, "utf-8")
    if not js_trim(raw):
        return ignored("empty file")
    try:
        parsed = jsjson.loads(raw)
    except jsjson.JSONSyntaxError as exc:
        return ignored(f"not JSON: {exc}")
    if not isinstance(parsed, dict):
        return ignored("not a JSON object")
    shape: Shape
    document_key = parsed.get("sessionKey")
    if isinstance(document_key, str) and isinstance(parsed.get("entry"), dict):
        key = js_trim(document_key)
        if not key:
            return ignored("sessionKey is blank")
        if expected is not None and key != expected:
            return ignored("sessionKey does not match the file name")
        value, shape = parsed["entry"], "document"
    elif expected is None:
        return ignored("a hashed name needs the {sessionKey, entry} document")
    else:
        key, value, shape = expected, parsed, "bare"
    if key in _BLOCKED_KEYS:
        return ignored(f"the gateway ignores the session key {key!r}")
    if entry_file_name(key) != name:
        return ignored("the file name is not the one the sessionKey gets")
    if _LONE_SURROGATE.search(key):
        return ignored("sessionKey holds a lone surrogate, which SQLite text cannot store")
    text = entry_text(value)
    canonical = render_entry_file(key, text) == data
    return EntryFile(
        name, data, sha, key, shape, value, text, validate_entry(value), None, canonical
    )


def render_entry_file(key: str, text: str) -> bytes:
    """``JSON.stringify({sessionKey: key, entry}, null, 2)`` from the entry's depth-1 text."""
    return f"{_FRAME_OPEN}{jsjson.dumps(key)}{_FRAME_ENTRY}{text}{_FRAME_CLOSE}".encode()


@dataclass(slots=True)
class ParsedDirectory:
    """An active sessions.d as the gateway loads it, with every file's bytes."""

    state: DirectoryState
    state_bytes: bytes
    files: list[EntryFile] = field(default_factory=list)
    """Regular files of ``entries/``, sorted by name (the gateway's readdir order)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(name, why) of entries the gateway does not read as files: symlinks, directories,
    lock and temp files. They are not imported."""


def read_directory(
    root: Path,
    known: Mapping[str, tuple[str, str]] | None = None,
    *,
    parts: Sequence[str] = (),
) -> ParsedDirectory | None:
    """Read an active sessions.d, ``root/parts...`` (None when it is not active, as
    `active_state` decides).

    Every file is read through directory descriptors (`in_tree`): no symlink below `root` is
    followed (the sessions.d, its entries/ or a file swapped for one after the import was
    planned makes the read fail or the file skipped), and only regular files are read.
    `known` maps file names to the (sha256, key) of files read before: a file whose bytes
    still have that sha256 is not parsed again (`EntryFile.parsed` is False)."""
    shown = root.joinpath(*parts)
    folder = open_dir(root, parts, shown=shown)
    try:
        try:
            entries = open_child_dir(folder, ENTRIES_DIR, shown=shown / ENTRIES_DIR)
        except OSError:
            return None
        try:
            try:
                with open_child(folder, STATE_FILE, shown=shown / STATE_FILE) as f:
                    state_bytes = f.read()
            except OSError:
                return None
            state = parse_state(state_bytes)
            if state is None:
                return None
            parsed = ParsedDirectory(state, state_bytes)
            _read_entries(entries, shown / ENTRIES_DIR, parsed, known)
        finally:
            os.close(entries)
    finally:
        os.close(folder)
    return parsed


def _read_entries(
    entries: int,
    shown: Path,
    parsed: ParsedDirectory,
    known: Mapping[str, tuple[str, str]] | None,
) -> None:
    with os.scandir(entries) as listing:
        found = sorted(listing, key=lambda e: os.fsencode(e.name))
    for item in found:
        if _LONE_SURROGATE.search(item.name):
            parsed.skipped.append((item.name, "file name is not UTF-8: not imported"))
        elif item.is_symlink():
            parsed.skipped.append((item.name, "symlink: the gateway ignores it"))
        elif not item.is_file(follow_symlinks=False):
            parsed.skipped.append((item.name, "not a regular file: the gateway ignores it"))
        elif item.name.endswith((".tmp", ".lock")):
            parsed.skipped.append((item.name, "lock or temp file: never imported"))
        else:
            try:
                with open_child(entries, item.name, shown=shown / item.name) as f:
                    data = f.read()
            except OSError as exc:  # swapped for a symlink or a non-file since the listing
                parsed.skipped.append((item.name, f"not read: {exc.strerror}"))
                continue
            before = known.get(item.name) if known else None
            sha = hashlib.sha256(data).hexdigest() if before else ""
            if before is not None and before[0] == sha:
                parsed.files.append(EntryFile(item.name, data, sha, before[1], None, parsed=False))
            else:
                parsed.files.append(read_entry_file(item.name, data))
