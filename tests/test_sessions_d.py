"""The directory-backed session index (sessions.d, docs/FORMATS.md §7): import, export,
conversion both ways, incremental re-import. Fixtures are written by Node programs that
follow the gateway's rules (tests/sessions_d_node.py); bytes are compared with ``==``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sessions_d_node import (
    load_directory,
    migrate_index,
    names_of,
    render_documents,
    state_versions,
    write_directory,
)
from test_jsjson import json_values, keys, texts

from store_sql import MaintenancePolicy, Store, export_tree, import_path, verify_tree
from store_sql.formats import jsjson, sessions_dir
from store_sql.formats.sessions_json import entry_text, js_key_order
from store_sql.formats.state_dir import FileKind, classify_name

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("node") is None, reason="node is not installed (the oracle)"
)

A = "main"
LONG_KEY = "agent:main:discord:channel:" + "x" * 60 + ":thread:" + "é" * 30  # > 120 bytes


def entry(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "sessionId": f"0000000{n}-aaaa-bbbb-cccc-dddddddddddd",
        "updatedAt": 1_760_000_000_000 + n,
        **extra,
    }


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` (symlinks not followed), by relative path."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


def build_state(tmp: Path) -> Path:
    """A state dir whose agent `main` uses a sessions.d holding everything the loader meets:
    both shapes, a hashed name, keys with / + and unicode, dotfiles, a symlink, names that
    do not decode, invalid files; plus sessions.json beside it, its .bak, a quarantined dir."""
    state = tmp / "state"
    sessions = state / "agents" / A / "sessions"
    sessions.mkdir(parents=True)
    entries = [
        {"key": "agent:main:main", "entry": entry(1, label="main", cost=0.000009, big=1e21)},
        {"key": "agent:main:telegram:group:-100/77+x", "entry": entry(2, chatType="group")},
        {"key": "agent:main:signal:Ünïcødé😀", "entry": entry(3, displayName="日本語")},
        {"key": LONG_KEY, "entry": entry(4)},
        {"key": "7", "entry": entry(5)},
        {"key": "agent:main:bare", "entry": entry(6, note="bare shape"), "shape": "bare"},
        {"key": "agent:main:no-session-id", "entry": {"updatedAt": 5, "origin": {"x": [1, 2]}}},
    ]
    ignored = [
        (".hidden.json", b'{"sessionKey":"agent:main:dot","entry":{}}'),
        ("session-!!!.json", b'{"sessionKey":"!","entry":{}}'),
        ("session-QR.json", b'{"sessionKey":"A","entry":{}}'),  # not the canonical "QQ"
        (sessions_dir.entry_file_name("agent:main:broken"), b'{"sessionKey": "agent:main:br'),
        (sessions_dir.entry_file_name("agent:main:empty"), b"  \n"),
        (
            sessions_dir.entry_file_name("agent:main:other"),
            b'{"sessionKey":"agent:main:x","entry":{}}',
        ),
        (sessions_dir.entry_file_name("__proto__"), b'{"sessionKey":"__proto__","entry":{"a":1}}'),
        ("session-hash-AAAA.json", b'{"sessionId":"s","updatedAt":1}'),
        ("notes.txt", b"not an entry\n"),
        (b"session-\xff\xfe.json", b"{}"),
    ]
    write_directory(
        sessions / "sessions.d",
        entries,
        files=ignored,
        symlinks=[(sessions_dir.entry_file_name("agent:main:link"), "../state.json")],
    )
    (sessions / "sessions.json").write_bytes(
        b'{\n  "agent:main:old": {\n    "sessionId": "x",\n    "updatedAt": 1\n  }\n}'
    )
    (sessions / "sessions.json.bak.1759999999999").write_bytes(b"{}")
    write_directory(
        sessions / "sessions.d.orphan.1759999999000", [{"key": "agent:main:q", "entry": entry(9)}]
    )
    (sessions / "abc.jsonl").write_bytes(b'{"type":"session","version":3,"id":"abc"}\n')
    return state


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return build_state(tmp_path)


def sessions_of(state: Path) -> Path:
    return state / "agents" / A / "sessions"


# --- names ---------------------------------------------------------------------------------


def test_file_names_are_nodes_for_tricky_and_random_keys() -> None:
    rng = random.Random(18)
    alphabet = "aZ09:/+-_=. \t\u00a0\u3000\ufeffé😀\u2028\x1c\x85"
    keys = [
        "a",
        " a",
        "a ",
        "\u3000",
        " ",
        "agent:main:main",
        "x" * 120,
        "x" * 121,
        "é" * 60,
        "é" * 61,
    ]
    keys += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 130))) for _ in range(400)]
    keys += ["\ud800x", "x\udfff"]  # lone surrogates: Node writes U+FFFD for them
    for key, node in zip(keys, names_of(keys), strict=True):
        if node["name"] is None:
            with pytest.raises(ValueError):
                sessions_dir.entry_file_name(key)
            continue
        assert sessions_dir.entry_file_name(key) == node["name"], repr(key)
        assert sessions_dir.key_of_file_name(node["name"]) == node["decoded"], repr(key)


LONG = os.environ.get("STORE_SQL_LONG_TESTS") == "1"
properties = settings(
    max_examples=2000 if LONG else 200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@properties
@given(key=st.one_of(texts, keys))
def test_an_inline_name_decodes_to_its_trimmed_key(key: str) -> None:
    trimmed = sessions_dir.js_trim(key)
    if not trimmed:
        with pytest.raises(ValueError):
            sessions_dir.entry_file_name(key)
        return
    name = sessions_dir.entry_file_name(key)
    assert name.endswith(".json")
    assert name.isascii()
    assert sessions_dir.entry_file_name(trimmed) == name
    as_written = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in trimmed)
    if name.startswith("session-hash-"):
        assert len(as_written.encode()) > 120
        assert sessions_dir.key_of_file_name(name) is None
    else:
        assert sessions_dir.key_of_file_name(name) == as_written


@properties
@given(key=texts, value=st.dictionaries(keys, json_values, max_size=6), bare=st.booleans())
def test_an_entry_file_the_gateway_writes_reads_back_exactly(
    key: str, value: dict[str, Any], bare: bool
) -> None:
    key = sessions_dir.js_trim(key)
    if (
        not key
        or any(0xD800 <= ord(c) <= 0xDFFF for c in key)
        or key in ("__proto__", "constructor", "prototype")
    ):
        return
    name = sessions_dir.entry_file_name(key)
    text = entry_text(value)
    if bare:
        if name.startswith("session-hash-"):
            return
        data = jsjson.dumps(value, indent=2).encode("utf-8", "surrogatepass")
    else:
        data = sessions_dir.render_entry_file(key, text)
    read = sessions_dir.read_entry_file(name, data)
    if b"\xed" in data:  # a lone surrogate written raw: the gateway reads U+FFFD there
        return
    assert read.key == key, read.ignored
    assert read.shape == ("bare" if bare else "document")
    assert read.text == text
    assert read.canonical is not bare


def test_the_loader_keeps_what_nodes_loader_keeps(tmp_path: Path) -> None:
    """Random files of every shape, good and bad, read by both loaders."""
    rng = random.Random(1851946)
    root = tmp_path / "sessions.d"
    pool = ["agent:main:main", "a/b", "a+b", " x ", "7", "__proto__", "é" * 70, "k" * 121, "😀"]

    def content(key: str) -> bytes:
        choice = rng.randrange(9)
        value = entry(rng.randrange(100), x=rng.random())
        if choice == 0:
            return b""
        if choice == 1:
            return b"[1, 2]"
        if choice == 2:
            return json.dumps(value).encode()[:-3]
        if choice == 3:
            return json.dumps(value, indent=2).encode()  # bare
        if choice == 4:
            other = rng.choice(pool)
            return json.dumps({"sessionKey": other, "entry": value}).encode()
        if choice == 5:
            return json.dumps({"sessionKey": key, "entry": [1]}).encode()
        if choice == 6:
            return b"\xef\xbb\xbf" + json.dumps({"sessionKey": key, "entry": value}).encode()
        return json.dumps(
            {"sessionKey": f"  {key}\t", "entry": value}, indent=rng.choice([None, 2])
        ).encode()

    files: list[tuple[str | bytes, bytes]] = []
    for n in range(300):
        key = rng.choice(pool) + str(rng.randrange(5))
        if sessions_dir.js_trim(key):
            files.append((sessions_dir.entry_file_name(key), content(key)))
        files.append((f"session-{n}.json", content(key)))
    write_directory(root, [], files=list(dict(files).items()))
    node_keys, node_json = load_directory(root)
    parsed = sessions_dir.read_directory(root)
    assert parsed is not None
    ours = [f for f in parsed.files if f.key is not None]
    assert len(ours) > 20, "the mix must hold files the gateway keeps"
    assert len(parsed.files) - len(ours) > 100, "... and files it ignores"
    assert js_key_order(f.key for f in ours) == node_keys  # readdir order, by name bytes
    assert {f.key: json.loads(f.text) for f in ours} == json.loads(node_json)


def test_state_json_is_accepted_exactly_when_the_gateway_accepts_it() -> None:
    base = '"kind": "openclaw-session-store-directory", "layoutVersion": 1'
    variants = [
        f'{{{base}, "version": {v}, "updatedAt": {u}}}'
        for v in ("1", "2.0", "1e3", "0", "-1", "1.5", '"1"', "true", "null", "9007199254740993")
        for u in ("0", "1.5", "-3", "1e400", '"1"', "null")
    ]
    variants += [
        '{"kind": "x", "layoutVersion": 1, "version": 1, "updatedAt": 1}',
        '{"kind": "openclaw-session-store-directory", "layoutVersion": 1.0, "version": 1, '
        '"updatedAt": 1}',
        '{"kind": "openclaw-session-store-directory", "layoutVersion": "1", "version": 1, '
        '"updatedAt": 1}',
        f'{{{base}, "version": 1}}',
        f'{{{base}, "version": 1, "updatedAt": 1}} x',
        f'\ufeff{{{base}, "version": 1, "updatedAt": 1}}',
        f' \n{{{base}, "version": 4, "updatedAt": 1, "extra": [1]}}\n',
        "[]",
        "",
    ]
    texts = [v.encode() for v in variants]
    texts.append(sessions_dir.render_state(12, 1_760_000_000_000))
    for text, version in zip(texts, state_versions(texts), strict=True):
        state = sessions_dir.parse_state(text)
        assert (state.version if state else None) == version, text


def test_index_directories_the_gateway_set_aside_are_archives_by_name() -> None:
    for name in (
        "sessions.d/entries/session-YQ.json",
        "sessions.d.bak.1760000000000/state.json",
        "sessions.d.orphan.1760000000000/entries/x",
        "sessions.d.staging-4242-1760000000000/entries/session-YQ.json",
    ):
        assert classify_name(name).kind is FileKind.INDEX_ARCHIVE, name
    assert classify_name("sessions.json.bak.1760000000000").kind is FileKind.BACKUP
    assert classify_name("sessions.d.old/state.json").kind is FileKind.OTHER
    assert (
        classify_name("sessions.d/entries/.session-YQ.json.1234.tmp").kind is FileKind.LOCK_OR_TEMP
    )


def _usable(key: str) -> bool:
    return (
        sessions_dir.key_refusal(key) is None
        and bool(key)
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in key)
    )


@settings(
    max_examples=40 if LONG else 6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    index=st.dictionaries(
        st.one_of(texts, keys).filter(_usable),
        st.dictionaries(keys, json_values, max_size=4),
        min_size=1,
        max_size=15,
    ),
    bare=st.sets(st.integers(0, 14)),
)
def test_random_directories_round_trip_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory, index: dict[str, Any], bare: set[int]
) -> None:
    work = tmp_path_factory.mktemp("random")
    sessions = work / "state" / "agents" / A / "sessions"
    specs = [
        {
            "key": k,
            "entry": v,
            "shape": "bare" if n in bare and len(k.encode()) <= 120 else "document",
        }
        for n, (k, v) in enumerate(index.items())
    ]
    write_directory(sessions / "sessions.d", specs)
    node_keys, _ = load_directory(sessions / "sessions.d")

    async def round_trip() -> None:
        async with await Store.open(work / "store.sqlite") as store:
            await import_path(store, work / "state")
            assert {s.key for s in await store.sessions.list_entries(A)} == set(node_keys)
            # Every file Node wrote in the document shape is what the store renders itself:
            # only bare entries are kept as bytes.
            kept = await store.read(
                lambda c: c.execute(
                    "SELECT count(*) FROM session_entry_files WHERE content IS NOT NULL"
                ).fetchone()[0]
            )
            assert kept == sum(spec["shape"] == "bare" for spec in specs)
            await export_tree(store, work / "out")
            assert (await verify_tree(store, work / "state")).identical

    asyncio.run(round_trip())
    assert tree_bytes(work / "out") == tree_bytes(work / "state")


# --- import --------------------------------------------------------------------------------


async def test_import_reads_what_the_gateway_loads_and_reports_the_rest(
    backend: Store, state: Path
) -> None:
    store = backend
    keys, _ = load_directory(sessions_of(state) / "sessions.d")
    report = await import_path(store, state)
    assert report.ok, report.as_dict()
    listed = {s.key for s in await store.sessions.list_entries(A)}
    assert listed == set(keys)
    assert len(keys) == 7
    assert "agent:main:old" not in listed  # the directory is authoritative
    directory = next(f for f in report.files if f.kind == "sessions_directory")
    assert directory.entries == 7
    assert "is the agent's index" in (directory.message or "")
    assert directory.entry_files is not None
    assert len(directory.entry_files["ignored"]) == 9
    assert any("symlink" in s for s in directory.entry_files["skipped"])
    assert any("not UTF-8" in s for s in directory.entry_files["skipped"])
    assert directory.damaged_total == 1  # the entry with no sessionId
    legacy = next(f for f in report.files if f.rel_path.endswith("/sessions.json"))
    assert legacy.kind == "legacy_index"
    assert legacy.status == "kept_opaque"
    kinds = {f.rel_path.split("/sessions/")[1]: f.kind for f in report.files}
    assert kinds["sessions.json.bak.1759999999999"] == "backup"
    assert kinds["sessions.d.orphan.1759999999000/state.json"] == "index_archive"
    bare = await store.sessions.get(A, "agent:main:bare")
    assert bare is not None
    assert bare["note"] == "bare shape"
    assert (await store.sessions.get(A, LONG_KEY)) == entry(4)


async def test_export_round_trips_the_state_dir_byte_for_byte(
    backend: Store, state: Path, tmp_path: Path
) -> None:
    store = backend
    await import_path(store, state)
    out = tmp_path / "out"
    report = await export_tree(store, out)
    assert report.ok
    assert not report.conflicts
    assert not report.removed
    assert not report.moved
    source, exported = tree_bytes(state), tree_bytes(out)
    link = f"agents/{A}/sessions/sessions.d/entries/" + sessions_dir.entry_file_name(
        "agent:main:link"
    )
    assert (state / link).is_symlink()
    assert not (out / link).exists()
    undecodable = {p for p in source if "\udcff" in p}
    assert set(source) - set(exported) == undecodable
    assert all(exported[p] == source[p] for p in exported)
    assert set(exported) <= set(source)
    assert (await verify_tree(store, state)).identical


async def test_patches_render_as_the_gateway_writes_them(
    backend: Store, state: Path, tmp_path: Path
) -> None:
    store = backend
    await import_path(store, state)
    await store.sessions.patch(A, "agent:main:main", {"label": "renamed", "big": None})
    await store.sessions.patch(A, "agent:main:bare", {"updatedAt": 1_770_000_000_000})
    await store.sessions.delete(A, "agent:main:telegram:group:-100/77+x")
    new_key = "agent:main:new:" + "ü" * 70  # hashed name
    await store.sessions.put(A, new_key, entry(8, label="new"))
    out = tmp_path / "out"
    await export_tree(store, out)
    entries_dir = sessions_of(out) / "sessions.d" / "entries"
    changed = ["agent:main:main", "agent:main:bare", new_key]
    expected = render_documents([(k, await store.sessions.get(A, k)) for k in changed])
    for key, text in zip(changed, expected, strict=True):
        assert (entries_dir / sessions_dir.entry_file_name(key)).read_bytes() == text.encode()
    assert not (
        entries_dir / sessions_dir.entry_file_name("agent:main:telegram:group:-100/77+x")
    ).exists()
    source_entries = sessions_of(state) / "sessions.d" / "entries"
    for key in ("agent:main:signal:Ünïcødé😀", LONG_KEY, "7"):
        name = sessions_dir.entry_file_name(key)
        assert (entries_dir / name).read_bytes() == (source_entries / name).read_bytes()
    written = json.loads((sessions_of(out) / "sessions.d" / "state.json").read_bytes())
    assert written["version"] == 8
    assert written["kind"] == "openclaw-session-store-directory"
    state_text = (sessions_of(out) / "sessions.d" / "state.json").read_text()
    assert state_text == json.dumps(written, indent=2)  # JSON.stringify(state, null, 2)
    keys, _ = load_directory(sessions_of(out) / "sessions.d")
    assert set(keys) == {s.key for s in await store.sessions.list_entries(A)}


async def test_conversion_to_sessions_json_is_the_gateways_rollback(
    store: Store, state: Path, tmp_path: Path
) -> None:
    await import_path(store, state)
    _, rollback = load_directory(sessions_of(state) / "sessions.d")
    out = tmp_path / "out"
    await export_tree(store, out)  # the same layout first, then converted over it
    report = await export_tree(store, out, index_layout="json")
    assert (sessions_of(out) / "sessions.json").read_text() == rollback
    moved = [b for _, b in report.moved]
    assert moved
    assert moved[0].startswith(f"agents/{A}/sessions/sessions.d.bak.")
    assert not (sessions_of(out) / "sessions.d").exists()
    # The converted index reads back as the same sessions in a fresh store.
    again = await Store.open(tmp_path / "again.sqlite")
    try:
        await import_path(again, out)
        assert {s.key for s in await again.sessions.list_entries(A)} == {
            s.key for s in await store.sessions.list_entries(A)
        }
    finally:
        await again.close()


async def test_conversion_to_a_directory_is_the_gateways_migration(
    store: Store, tmp_path: Path
) -> None:
    sessions = tmp_path / "state" / "agents" / A / "sessions"
    sessions.mkdir(parents=True)
    index = {
        k: entry(n, label=k) for n, k in enumerate(["agent:main:main", "9", LONG_KEY, "a/b+c"])
    }
    (sessions / "sessions.json").write_text(json.dumps(index, indent=2, ensure_ascii=False))
    migrate_index(sessions / "sessions.json", tmp_path / "migrated")
    await import_path(store, tmp_path / "state")
    out = tmp_path / "out"
    await export_tree(store, out)
    report = await export_tree(store, out, index_layout="directory")
    assert next(b for _, b in report.moved).startswith(f"agents/{A}/sessions/sessions.json.bak.")
    exported = tree_bytes(sessions_of(out) / "sessions.d" / "entries")
    assert exported == tree_bytes(tmp_path / "migrated" / "entries")
    written = json.loads((sessions_of(out) / "sessions.d" / "state.json").read_bytes())
    assert written["version"] == 1
    # ... and back: the rollback gives the original sessions.json bytes.
    again = await Store.open(tmp_path / "again.sqlite")
    try:
        await import_path(again, out)
        assert (await export_tree(again, tmp_path / "back", index_layout="json")).ok
    finally:
        await again.close()
    _, rollback = load_directory(sessions_of(out) / "sessions.d")
    assert (sessions_of(tmp_path / "back") / "sessions.json").read_text() == rollback
    assert json.loads(rollback) == index


async def test_keys_a_directory_cannot_hold_are_refused_not_altered(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    await store.sessions.put(A, " padded", entry(1))
    await store.sessions.put(A, "__proto__", entry(2))
    await store.sessions.put(A, "fine", entry(3))
    report = await export_tree(store, tmp_path / "out", index_layout="directory")
    assert not report.ok
    assert len(report.refused) == 2
    keys, _ = load_directory(sessions_of(tmp_path / "out") / "sessions.d")
    assert keys == ["fine"]


async def test_an_inactive_directory_is_kept_as_an_archive(backend: Store, tmp_path: Path) -> None:
    store = backend
    sessions = tmp_path / "state" / "agents" / A / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "sessions.json").write_bytes(
        b'{\n  "k": {\n    "sessionId": "s",\n    "updatedAt": 1\n  }\n}'
    )
    write_directory(sessions / "sessions.d", [{"key": "other", "entry": entry(1)}], state=False)
    report = await import_path(store, tmp_path / "state")
    assert [s.key for s in await store.sessions.list_entries(A)] == ["k"]
    kinds = {f.rel_path.split("/sessions/")[1]: f.kind for f in report.files}
    assert kinds[f"sessions.d/entries/{sessions_dir.entry_file_name('other')}"] == "index_archive"
    await export_tree(store, tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "state")


# --- re-import -----------------------------------------------------------------------------


async def test_reimport_notices_changed_added_and_removed_entry_files(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    sessions = tmp_path / "state" / "agents" / A / "sessions"
    root = sessions / "sessions.d"
    base = [{"key": f"agent:main:k{n}", "entry": entry(n)} for n in range(5)]
    write_directory(root, base, version=3)
    first = await import_path(store, tmp_path / "state")
    assert first.files[0].status == "imported"
    again = await import_path(store, tmp_path / "state")
    assert again.files[0].status == "unchanged"
    # The gateway changes k1, adds k9, removes k2 and bumps the version.
    (root / "entries" / sessions_dir.entry_file_name("agent:main:k2")).unlink()
    write_directory(
        root,
        [
            {"key": "agent:main:k1", "entry": entry(1, label="x")},
            {"key": "agent:main:k9", "entry": entry(9)},
        ],
        version=4,
    )
    report = await import_path(store, tmp_path / "state")
    record = report.files[0]
    assert record.status == "new_version", record.as_dict()
    assert record.entry_files is not None
    name = sessions_dir.entry_file_name
    assert record.entry_files["changed"] == [name("agent:main:k1")]
    assert record.entry_files["added"] == [name("agent:main:k9")]
    assert record.entry_files["removed"] == [name("agent:main:k2")]
    assert {s.key for s in await store.sessions.list_entries(A)} == {
        "agent:main:k0",
        "agent:main:k1",
        "agent:main:k3",
        "agent:main:k4",
        "agent:main:k9",
    }
    assert (await store.sessions.get(A, "agent:main:k1")) == entry(1, label="x")
    await export_tree(store, tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "state")
    # An entry changed through the API and on disk is a conflict; the store keeps its own.
    await store.sessions.patch(A, "agent:main:k3", {"label": "api"})
    write_directory(root, [{"key": "agent:main:k3", "entry": entry(3, label="disk")}], version=5)
    write_directory(root, [{"key": "agent:main:k4", "entry": entry(4, label="disk")}], version=5)
    report = await import_path(store, tmp_path / "state")
    record = report.files[0]
    assert record.status == "error"
    assert record.entry_files is not None
    assert record.entry_files["conflicts"] == [name("agent:main:k3")]
    assert record.entry_files["changed"] == [name("agent:main:k4")]
    assert (await store.sessions.get(A, "agent:main:k3"))["label"] == "api"  # type: ignore[index]
    assert (await store.sessions.get(A, "agent:main:k4"))["label"] == "disk"  # type: ignore[index]
    await export_tree(store, tmp_path / "out2")
    written = json.loads(
        (sessions_of(tmp_path / "out2") / "sessions.d" / "state.json").read_bytes()
    )
    assert written["version"] == 6


async def test_a_sessions_json_index_becomes_the_directory_when_the_gateway_migrates(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    sessions = tmp_path / "state" / "agents" / A / "sessions"
    sessions.mkdir(parents=True)
    index = {"agent:main:main": entry(1), "agent:main:x": entry(2)}
    (sessions / "sessions.json").write_text(json.dumps(index, indent=2))
    await import_path(store, tmp_path / "state")
    migrate_index(sessions / "sessions.json", sessions / "sessions.d")
    (sessions / "sessions.json").rename(sessions / "sessions.json.bak.1760000000000")
    report = await import_path(store, tmp_path / "state")
    record = next(f for f in report.files if f.kind == "sessions_directory")
    assert record.status == "new_version"
    await export_tree(store, tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "state")


# --- command line --------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "store_sql", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_lists_and_converts_a_sessions_d_agent(state: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "cli.sqlite")
    assert cli("import", str(state), "--db", db).returncode == 0
    listed = cli("sessions", "list", "--db", db, "--json")
    assert listed.returncode == 0, listed.stderr
    assert "agent:main:bare" in listed.stdout
    out = tmp_path / "json-out"
    done = cli("export", str(out), "--db", db, "--index-layout", "json", "--json")
    assert done.returncode == 0, done.stderr
    assert (sessions_of(out) / "sessions.json").is_file()
    bad = cli("export", str(out), "--db", db, "--index-layout", "yaml")
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr


async def test_maintenance_and_dry_runs_work_on_a_directory_index(
    store: Store, tmp_path: Path
) -> None:
    sessions = tmp_path / "state" / "agents" / A / "sessions"
    keys = [f"agent:main:telegram:direct:{n}" for n in range(6)]
    write_directory(
        sessions / "sessions.d", [{"key": k, "entry": entry(n)} for n, k in enumerate(keys)]
    )
    dry = await import_path(store, tmp_path / "state", dry_run=True)
    assert dry.files[0].entries == 6
    assert await store.sessions.list_entries(A) == []
    await import_path(store, tmp_path / "state")
    policy = MaintenancePolicy(mode="enforce", prune_after_ms=10**15, max_entries=4)
    summary = await store.maintenance.cleanup(A, policy, now_ms=1_760_000_000_100)
    assert summary["afterCount"] == 4
    report = await export_tree(store, tmp_path / "state", index_layout="directory")
    assert len(report.removed) == 2  # written over the source: the pruned keys' files go
    loaded, _ = load_directory(sessions / "sessions.d")
    assert set(loaded) == {s.key for s in await store.sessions.list_entries(A)}
    assert len(loaded) == 4
