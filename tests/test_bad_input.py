"""Bad input, table-driven: every case gets a precise error or is kept byte for byte.

docs/GUARANTEES.md "Bad input" is the promise tested here. For each source case a real
state directory is imported and exported again:
- the import finishes (no exception, no hang: `asyncio.wait_for`, and faulthandler kills a
  run stuck in C code), and the file's report says what happened (status, message or the
  damaged line and why);
- every importable file comes back out of export byte for byte; files that are never
  imported (lock/temp files, FIFOs, symlinks leaving the directory) are not exported;
- the source tree is untouched (hashes before and after, symlinks and the directory they
  point to included) and every read of what was imported (tree, active path, context,
  recent) terminates, even for parent cycles and duplicate ids.
A second table feeds bad arguments to the API: each raises a precise error and changes
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import hashlib
import inspect
import os
import shutil
import sqlite3
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard

from store_sql import Store, export_tree
from store_sql.errors import InvalidEntryError, NotFoundError, StoreError
from store_sql.importer.api import ImportReport, import_path

SESSIONS_DIR = "agents/main/sessions"
TIMEOUT_S = 60


def header(sid: str = "s1", extra: str = "") -> bytes:
    return (
        b'{"type":"session","version":3,"id":"%s","timestamp":"2026-01-01T00:00:00.000Z",'
        b'"cwd":"/w"%s}' % (sid.encode(), extra.encode())
    )


def entry(eid: str, parent: str | None, text: str = "hi") -> bytes:
    p = "null" if parent is None else f'"{parent}"'
    return (
        f'{{"type":"message","id":"{eid}","parentId":{p},"timestamp":"2026-01-01T00:00:01.000Z",'
        f'"message":{{"role":"user","content":"{text}"}}}}'
    ).encode()


def jsonl(*lines: bytes, final_newline: bool = True) -> bytes:
    return b"\n".join(lines) + (b"\n" if final_newline else b"")


def index(*members: tuple[str, bytes]) -> bytes:
    """sessions.json as JSON.stringify(store, null, 2) writes it (values given pre-indented)."""
    if not members:
        return b"{}"
    return b"{\n" + b",\n".join(b'  "%s": %s' % (k.encode(), v) for k, v in members) + b"\n}"


def index_entry(session_id: str = "s1", updated_at: bytes = b"1767225600000") -> bytes:
    return b'{\n    "sessionId": "%s",\n    "updatedAt": %s\n  }' % (
        session_id.encode(),
        updated_at,
    )


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


DEEP = b"[" * 10_000 + b"]" * 10_000
CRLF = b"\r\n"
SURROGATE = b"\xed\xa0\x80"  # U+D800 encoded as if it were a character (CESU-8): not UTF-8
RESET_ZST = "s1.jsonl.reset.2026-01-01T00-00-00.000Z.zst"
DELETED_ZST = "s1.jsonl.deleted.2026-01-01T00-00-00.000Z.zst"
HUGE_TEXT = "x" * (12 * 1024 * 1024)


@dataclass(frozen=True)
class Expect:
    """What the import report must say about one file."""

    status: str
    message: str | None = None
    """A substring of the file's message."""
    damaged: str | None = None
    """A substring of one of its damaged-line reasons."""
    verbatim: bool = True
    """Exported again byte for byte."""


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, bytes]
    """Relative to agents/main/sessions."""
    expect: dict[str, Expect]
    skipped: dict[str, str] = field(default_factory=dict)
    """Directory entries the import must skip (never exported), with a reason substring."""
    setup: Callable[[Path, Path], None] | None = None
    """Called with (sessions dir, a directory outside the state dir) after the files."""
    check: Callable[[Store, ImportReport], Awaitable[None]] | None = None


def symlink_out(sessions: Path, outside: Path) -> None:
    (sessions / "stolen.jsonl").symlink_to(outside / "secret.jsonl")
    (sessions / "sessions.json.bak").symlink_to(outside)


def symlink_loop(sessions: Path, _outside: Path) -> None:
    (sessions / "loop").symlink_to(".")
    (sessions / "inner-link.jsonl").symlink_to("s1.jsonl")


def fifo(sessions: Path, _outside: Path) -> None:
    os.mkfifo(sessions / "pipe.jsonl")  # opening it to read would block forever


async def proto_keys_kept(store: Store, _report: ImportReport) -> None:
    for key in ("__proto__", "constructor", "prototype"):
        got = await store.sessions.get("main", key)
        assert got is not None
        assert got["sessionId"] == key.strip("_")


async def last_duplicate_wins(store: Store, _report: ImportReport) -> None:
    got = await store.sessions.get("main", "agent:main:a")
    assert got is not None
    assert got["sessionId"] == "second"


async def leaf_is_last_line(store: Store, _report: ImportReport) -> None:
    info = await store.transcripts.info("main", "s1")
    leaf = await store.transcripts.leaf("main", "s1")
    assert leaf is not None
    assert (leaf.pos, info.leaf_pos) == (info.line_count - 1, info.line_count - 1)


async def path_stops_at_missing_parent(store: Store, _report: ImportReport) -> None:
    path = await store.transcripts.active_path("main", "s1")
    assert [e.id for e in path] == ["bbbbbbbb", "cccccccc"]


CASES = [
    # --- sessions.json ------------------------------------------------------------------------
    Case("index 0 bytes", {"sessions.json": b""},
         {"sessions.json": Expect("kept_opaque", "file is empty (0 bytes)")}),
    Case("index truncated", {"sessions.json": index(("a", index_entry()))[:-12]},
         {"sessions.json": Expect("kept_opaque", "the file ends early")}),
    Case("index is an array", {"sessions.json": b"[]"},
         {"sessions.json": Expect("kept_opaque", "top-level value is an array, not an object")}),
    Case("index is null", {"sessions.json": b"null"},
         {"sessions.json": Expect("kept_opaque", "top-level value is null")}),
    Case("index __proto__/constructor/prototype keys",
         {"sessions.json": index(("__proto__", index_entry("proto")),
                                 ("constructor", index_entry("constructor")),
                                 ("prototype", index_entry("prototype")))},
         {"sessions.json": Expect("imported")}, check=proto_keys_kept),
    Case("index duplicate keys",
         {"sessions.json": index(("agent:main:a", index_entry("first")),
                                 ("agent:main:a", index_entry("second")))},
         {"sessions.json": Expect("imported", 'duplicate key "agent:main:a" at lines 2, 6')},
         check=last_duplicate_wins),
    Case("index BOM", {"sessions.json": b"\xef\xbb\xbf" + index(("a", index_entry()))},
         {"sessions.json": Expect("kept_opaque", "byte order mark")}),
    Case("index CRLF", {"sessions.json": index(("a", index_entry())).replace(b"\n", b"\r\n")},
         {"sessions.json": Expect("imported", "not laid out as JSON.stringify")}),
    Case("index invalid UTF-8",
         {"sessions.json": index(("a~", index_entry())).replace(b"~", b"\xff")},
         {"sessions.json": Expect("kept_opaque", "invalid UTF-8 at byte 6")}),
    Case("index lone surrogate escape in a key",
         {"sessions.json": index(("agent:main:\\ud800", index_entry()))},
         {"sessions.json": Expect("kept_opaque", "holds a lone surrogate")}),
    Case("index lone surrogate escape in a value",
         {"sessions.json": index(("a", b'{\n    "sessionId": "s",\n    "updatedAt": 1,\n'
                                       b'    "note": "\\udfff"\n  }'))},
         {"sessions.json": Expect("imported")}),
    Case("index NaN", {"sessions.json": b'{\n  "a": NaN\n}'},
         {"sessions.json": Expect("kept_opaque", "NaN is not JSON")}),
    Case("index entries without sessionId or updatedAt",
         {"sessions.json": index(("a", b'{\n    "updatedAt": 1\n  }'),
                                 ("b", index_entry(updated_at=b'"soon"')))},
         {"sessions.json": Expect("imported", damaged="a: missing sessionId")}),
    Case("index 10,000-level nesting", {"sessions.json": b'{\n  "a": ' + DEEP + b"\n}"},
         {"sessions.json": Expect("kept_opaque", "nested too deeply")}),
    Case("index integer-like keys not first",
         {"sessions.json": index(("b", index_entry()), ("7", index_entry()))},
         {"sessions.json": Expect("imported", "integer-like keys are not first")}),
    Case("index data after the object", {"sessions.json": b"{}\n{}"},
         {"sessions.json": Expect("kept_opaque", "unexpected data after the top-level")}),
    # --- transcripts --------------------------------------------------------------------------
    Case("jsonl glued records",
         {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", None) + entry("bbbbbbbb", "aaaaaaaa"))},
         {"s1.jsonl": Expect("imported", damaged="two JSON records glued together")}),
    Case("jsonl torn last line",
         {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", None)[:30], final_newline=False)},
         {"s1.jsonl": Expect("imported", "no newline at the end", "truncated JSON (torn line)")}),
    Case("jsonl BOM", {"s1.jsonl": b"\xef\xbb\xbf" + jsonl(header(), entry("aaaaaaaa", None))},
         {"s1.jsonl": Expect("imported", "byte order mark (kept)")}),
    Case("jsonl CRLF", {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", None)).replace(b"\n", CRLF)},
         {"s1.jsonl": Expect("imported", "lines end with CRLF (kept)")}),
    Case("jsonl invalid UTF-8",
         {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", None, "caf~").replace(b"~", b"\xe9"))},
         {"s1.jsonl": Expect("imported", damaged="invalid UTF-8 at byte")}),
    Case("jsonl lone surrogate escape",
         {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", None, "\\udc00 alone"))},
         {"s1.jsonl": Expect("imported")}),
    Case("jsonl lone surrogate escape in an entry id",
         {"s1.jsonl": jsonl(header(), entry("\\udc00", None))},
         {"s1.jsonl": Expect("imported")}),
    Case("jsonl raw surrogate bytes (CESU-8)",
         {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", None, "~").replace(b"~", SURROGATE))},
         {"s1.jsonl": Expect("imported", damaged="invalid UTF-8 at byte")}),
    Case("jsonl 12 MB line", {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", None, HUGE_TEXT))},
         {"s1.jsonl": Expect("imported")}),
    Case("jsonl 10,000-level nesting",
         {"s1.jsonl": jsonl(header(), b'{"type":"custom","data":' + DEEP + b"}")},
         {"s1.jsonl": Expect("imported", damaged="levels deep")}),
    Case("jsonl blank lines",
         {"s1.jsonl": jsonl(header(), b"", b"  \t", entry("aaaaaaaa", None))},
         {"s1.jsonl": Expect("imported", damaged="blank line (kept)")}),
    Case("jsonl lines that are not objects",
         {"s1.jsonl": jsonl(header(), b"[1,2]", b'"text"', b"42", b"null")},
         {"s1.jsonl": Expect("imported", damaged="not a JSON object (array)")}),
    Case("jsonl parent cycle",
         {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", "bbbbbbbb"),
                            entry("bbbbbbbb", "aaaaaaaa"))},
         {"s1.jsonl": Expect("imported")}),
    Case("jsonl missing parent",
         {"s1.jsonl": jsonl(header(), entry("bbbbbbbb", "gone0000"),
                            entry("cccccccc", "bbbbbbbb"))},
         {"s1.jsonl": Expect("imported")}, check=path_stops_at_missing_parent),
    Case("jsonl duplicate entry ids",
         {"s1.jsonl": jsonl(header(), entry("aaaaaaaa", None), entry("aaaaaaaa", "aaaaaaaa"),
                            entry("aaaaaaaa", "aaaaaaaa"))},
         {"s1.jsonl": Expect("imported")}, check=leaf_is_last_line),
    Case("jsonl 0 bytes", {"s1.jsonl": b""}, {"s1.jsonl": Expect("imported")}),
    Case("jsonl without header", {"s1.jsonl": jsonl(entry("aaaaaaaa", None))},
         {"s1.jsonl": Expect("imported")}),
    Case("session id with .., / and NUL in the header",
         {"s1.jsonl": jsonl(header("../../etc/x\\u0000/y"), entry("aaaaaaaa", None))},
         {"s1.jsonl": Expect("imported")}),
    Case("odd file names",
         {"s1-topic-a%2F..%2Fb.jsonl": jsonl(header()), "sp ace é.jsonl": jsonl(header()),
          "sub/dir/x.jsonl": jsonl(header())},
         {"s1-topic-a%2F..%2Fb.jsonl": Expect("imported"), "sp ace é.jsonl": Expect("imported"),
          "sub/dir/x.jsonl": Expect("kept_opaque")}),
    Case("truncated zstd archive",
         {RESET_ZST: zst(jsonl(header(), entry("aaaaaaaa", None)) * 50)[:40]},
         {RESET_ZST: Expect("kept_opaque", "truncated archive")}),
    Case("not zstd at all", {DELETED_ZST: b"plain text"},
         {DELETED_ZST: Expect("kept_opaque", "cannot decompress")}),
    # --- the directory itself -----------------------------------------------------------------
    Case("symlinks leaving the state dir", {"s1.jsonl": jsonl(header())},
         {"s1.jsonl": Expect("imported")},
         skipped={"stolen.jsonl": "symlink leaving the sessions dir",
                  "sessions.json.bak": "symlink leaving the sessions dir"},
         setup=symlink_out),
    Case("symlink loop and a link inside", {"s1.jsonl": jsonl(header())},
         {"s1.jsonl": Expect("imported"), "inner-link.jsonl": Expect("imported")},
         skipped={"loop": "symlink to a directory"}, setup=symlink_loop),
    Case("named pipe", {"s1.jsonl": jsonl(header())}, {"s1.jsonl": Expect("imported")},
         skipped={"pipe.jsonl": "not a regular file"}, setup=fifo),
    Case("lock and temp files",
         {"s1.jsonl": jsonl(header()), "s1.jsonl.lock": b"12345", "sessions.json.tmp": b"{"},
         {"s1.jsonl": Expect("imported")},
         skipped={"s1.jsonl.lock": "lock or temp file", "sessions.json.tmp": "lock or temp file"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database built once; each case copies it (building costs ~0.5 s)."""
    path = tmp_path_factory.mktemp("template") / "empty.sqlite"

    async def build() -> None:
        async with await Store.open(path):
            pass

    asyncio.run(build())
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root without following links: file hashes, link targets, kinds."""
    seen: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                seen[rel] = f"link -> {os.readlink(path)}"
            elif stat.S_ISREG(st.st_mode):
                seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest() + f" {st.st_mtime_ns}"
            else:
                seen[rel] = f"mode {stat.S_IFMT(st.st_mode):o}"
    return seen


async def read_everything(store: Store) -> None:
    """Every tree read of every imported transcript terminates; errors must be StoreErrors."""
    for info in await store.transcripts.list_transcripts("main"):
        for read in (
            store.transcripts.tree,
            store.transcripts.active_path,
            store.transcripts.context,
            store.transcripts.labels,
            store.transcripts.counts,
            store.transcripts.file_bytes,
        ):
            with contextlib.suppress(StoreError):
                await asyncio.wait_for(read("main", info.transcript_id), TIMEOUT_S)
        await asyncio.wait_for(
            store.transcripts.recent("main", info.transcript_id, limit=1000), TIMEOUT_S
        )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_bad_source_gets_a_precise_report_or_is_kept_verbatim(
    case: Case, tmp_path: Path, template_db: Path
) -> None:
    state, outside = tmp_path / "state", tmp_path / "outside"
    sessions = state / SESSIONS_DIR
    sessions.mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jsonl").write_bytes(jsonl(header("secret")))
    for rel, data in case.files.items():
        (sessions / rel).parent.mkdir(parents=True, exist_ok=True)
        (sessions / rel).write_bytes(data)
    if case.setup is not None:
        case.setup(sessions, outside)
    before = snapshot(tmp_path)
    db = tmp_path / "store.sqlite"
    shutil.copyfile(template_db, db)
    faulthandler.dump_traceback_later(TIMEOUT_S * 3, exit=True)  # a hang in C code
    try:
        async with await Store.open(db) as store:
            report = await asyncio.wait_for(import_path(store, state), TIMEOUT_S)
            exported = await asyncio.wait_for(export_tree(store, tmp_path / "out"), TIMEOUT_S)
            await read_everything(store)
            if case.check is not None:
                await case.check(store, report)
            integrity = await store.read(lambda c: c.execute("PRAGMA integrity_check").fetchall())
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert integrity == [("ok",)]
    files = {f.rel_path.removeprefix(SESSIONS_DIR + "/"): f for f in report.files}
    assert set(files) == set(case.expect), f"files reported: {sorted(files)}"
    for name, want in case.expect.items():
        got = files[name]
        assert got.status == want.status, (name, got.as_dict())
        if want.message is not None:
            assert want.message in (got.message or ""), (name, got.message)
        if want.damaged is not None:
            reasons = [reason for _, reason in got.damaged]
            assert any(want.damaged in r for r in reasons), (name, reasons)
            assert got.damaged_total == len(got.damaged) > 0
        else:
            assert not got.damaged, (name, got.damaged)
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    for name, reason in case.skipped.items():
        assert reason in skipped.get(name, ""), (name, skipped)
    assert exported.ok, exported.refused
    out = tmp_path / "out" / SESSIONS_DIR
    for name, want in case.expect.items():
        if want.verbatim:
            source = (sessions / name).read_bytes()
            assert (out / name).read_bytes() == source, f"{name} changed on the way through"
    for name in case.skipped:
        assert not (out / name).exists(), f"{name} was exported though it was skipped"
    assert snapshot(tmp_path / "state") == {
        k.removeprefix("state/"): v for k, v in before.items() if k.startswith("state/")
    }, "the import changed its source"
    assert snapshot(outside) == {
        k.removeprefix("outside/"): v for k, v in before.items() if k.startswith("outside/")
    }


def test_the_table_has_at_least_30_cases() -> None:
    assert len(CASES) >= 30


async def test_a_lone_surrogate_in_an_indexed_field_is_kept_or_refused_precisely(
    tmp_path: Path, template_db: Path
) -> None:
    shutil.copyfile(template_db, tmp_path / "store.sqlite")
    async with await Store.open(tmp_path / "store.sqlite") as store:
        try:
            await store.sessions.patch("main", "k", {"sessionId": "s\ud800", "updatedAt": 1})
        except InvalidEntryError:
            return
        got = await store.sessions.get("main", "k")
        assert got is not None
        assert got["sessionId"] == "s\ud800"


# --- the API ---------------------------------------------------------------------------------

Call = Callable[[Store], Awaitable[Any]]
ENTRY = {"sessionId": "s1", "updatedAt": 1}


def _mutator_returning_a_list(entry: Any) -> Any:
    return [entry]


API_CASES: list[tuple[str, Call, type[BaseException], str]] = [
    ("empty agent id", lambda s: s.sessions.get("", "k"), InvalidEntryError, "invalid agent id"),
    ("agent id with /", lambda s: s.sessions.patch("a/b", "k", ENTRY), InvalidEntryError,
     "invalid agent id"),
    ("agent id ..", lambda s: s.sessions.list_entries(".."), InvalidEntryError, "invalid agent id"),
    ("agent id with NUL", lambda s: s.transcripts.create("a\0", "s", cwd="/"), InvalidEntryError,
     "invalid agent id"),
    ("uppercase agent id", lambda s: s.sessions.put("Main", "k", ENTRY), InvalidEntryError,
     "lowercase"),
    ("agent id of 65 characters", lambda s: s.sessions.get("a" * 65, "k"), InvalidEntryError,
     "1-64"),
    ("agent id not a string", lambda s: s.sessions.get(7, "k"), InvalidEntryError,
     "invalid agent id"),
    ("empty session key", lambda s: s.sessions.patch("main", "", ENTRY), InvalidEntryError,
     "invalid session key"),
    ("entry without sessionId", lambda s: s.sessions.put("main", "k", {"updatedAt": 1}),
     InvalidEntryError, "missing sessionId"),
    ("entry without updatedAt", lambda s: s.sessions.put("main", "k", {"sessionId": "x"}),
     InvalidEntryError, "missing updatedAt"),
    ("new entry patched without updatedAt",
     lambda s: s.sessions.patch("main", "new", {"sessionId": "x"}), InvalidEntryError,
     "missing updatedAt"),
    ("patch removing sessionId", lambda s: s.sessions.patch("main", "k0", {"sessionId": None}),
     InvalidEntryError, "missing sessionId"),
    ("sessionId not a string", lambda s: s.sessions.put("main", "k", {**ENTRY, "sessionId": 5}),
     InvalidEntryError, "sessionId is not a string"),
    ("updatedAt a string", lambda s: s.sessions.patch("main", "k0", {"updatedAt": "now"}),
     InvalidEntryError, "updatedAt is not a number"),
    ("updatedAt NaN", lambda s: s.sessions.patch("main", "k0", {"updatedAt": float("nan")}),
     InvalidEntryError, "updatedAt is not a finite number"),
    ("updatedAt a boolean", lambda s: s.sessions.patch("main", "k0", {"updatedAt": True}),
     InvalidEntryError, "updatedAt is not a number"),
    ("patch is a list", lambda s: s.sessions.patch("main", "k0", [("updatedAt", 2)]),
     InvalidEntryError, "a patch must be a JSON object"),
    ("patch is a string", lambda s: s.sessions.patch("main", "k0", "updatedAt=2"),
     InvalidEntryError, "a patch must be a JSON object"),
    ("patch is None", lambda s: s.sessions.patch("main", "k0", None), InvalidEntryError,
     "a patch must be a JSON object"),
    ("patch with a non-string field name", lambda s: s.sessions.patch("main", "k0", {1: 2}),
     InvalidEntryError, "field names must be strings"),
    ("patch with a value that is not JSON",
     lambda s: s.sessions.patch("main", "k0", {"tags": {"a", "b"}}), TypeError, "at $.tags"),
    ("touch with a float", lambda s: s.sessions.touch("main", "k0", 1.5), InvalidEntryError,
     "updatedAt must be an integer"),
    ("touch of a missing key", lambda s: s.sessions.touch("main", "nope", 2), NotFoundError,
     "no session 'nope'"),
    ("mutator returning a list",
     lambda s: s.sessions.update("main", "k0", _mutator_returning_a_list), InvalidEntryError,
     "the mutator must return a dict"),
    ("append to a missing session",
     lambda s: s.transcripts.append_message("main", "nope", {"role": "user", "content": "x"}),
     NotFoundError, "no live transcript for session 'nope'"),
    ("append an entry that is not an object", lambda s: s.transcripts.append("main", "t", ["x"]),
     InvalidEntryError, "an entry must be a JSON object"),
    ("append an entry without type", lambda s: s.transcripts.append("main", "t", [{"a": 1}]),
     InvalidEntryError, "non-empty string 'type'"),
    ("append an entry with its own id",
     lambda s: s.transcripts.append("main", "t", [{"type": "custom", "id": "x"}]),
     InvalidEntryError, "entries get their 'id' from the store"),
    ("append below a missing parent",
     lambda s: s.transcripts.append("main", "t", [{"type": "custom"}], parent_id="ffffffff"),
     NotFoundError, "has no entry 'ffffffff'"),
    ("second live transcript for a session", lambda s: s.transcripts.create("main", "t", cwd="/"),
     InvalidEntryError, "already has a live transcript"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [pytest.param(c, e, m, id=i) for i, c, e, m in API_CASES],
)
async def test_bad_api_arguments_raise_a_precise_error_and_change_nothing(
    call: Call, error: type[BaseException], message: str, tmp_path: Path, template_db: Path
) -> None:
    shutil.copyfile(template_db, tmp_path / "store.sqlite")
    async with await Store.open(tmp_path / "store.sqlite") as store:
        await store.sessions.put("main", "k0", {**ENTRY, "n": 1})
        await store.transcripts.create("main", "t", cwd="/")
        before = await store.read(_dump)
        with pytest.raises(error) as raised:
            await call(store)
        assert message in str(raised.value)
        assert await store.read(_dump) == before, "a refused call changed the database"
        # And the store goes on working.
        await store.sessions.patch("main", "k0", {"n": 2})
        await store.transcripts.append_message("main", "t", {"role": "user", "content": "ok"})


def _dump(conn: sqlite3.Connection) -> list[Any]:
    tables = [
        "session_indexes",
        "session_entries",
        "transcripts",
        "transcript_lines",
        "opaque_files",
    ]
    return [conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables]


SESSION_CASES = [case for case in API_CASES if "transcripts" not in inspect.getsource(case[1])]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [pytest.param(c, e, m, id=i) for i, c, e, m in SESSION_CASES],
)
async def test_bad_session_arguments_on_postgresql_raise_the_same_errors(
    call: Call, error: type[BaseException], message: str, pg_url: str
) -> None:
    """The session cases above on PostgreSQL (the others need transcripts, not there yet)."""
    async with await Store.open(pg_url) as store:
        await store.sessions.put("main", "k0", {**ENTRY, "n": 1})
        before = await store.postgres.read(_pg_dump)
        with pytest.raises(error) as raised:
            await call(store)
        assert message in str(raised.value)
        assert await store.postgres.read(_pg_dump) == before, "a refused call changed it"
        await store.sessions.patch("main", "k0", {"n": 2})


async def _pg_dump(conn: Any) -> list[Any]:
    return [
        [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")]
        for t in ("session_indexes", "session_entries", "opaque_files")
    ]
