"""The file-system side of import and export under hostile trees, through the real CLI.

Each case runs `store-sql` as a subprocess: it never prints a traceback, and input it
refuses gets a non-zero exit with a one-line reason. What an import stores is checked
through `store-sql export` and the database itself: nothing from outside the tree, and
every name it accepted comes back out.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import command_line
import pytest

from store_sql import Store, export_tree, import_path
from store_sql.errors import InvalidEntryError

ROOT = Path(__file__).resolve().parents[1]

SID = "31ac7d57-f314-4633-a816-1ff578dde822"
HEADER = b'{"type":"session","version":3,"id":"' + SID.encode() + b'","timestamp":"t","cwd":"/w"}\n'
SECRET = b"-----BEGIN PRIVATE KEY----- outside the tree\n"


def store_sql(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    done = command_line.store_sql(*args, cwd=cwd)
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    return done


def refused(done: subprocess.CompletedProcess[bytes]) -> str:
    """The one-line reason of a refused command (non-zero exit, one line on stderr)."""
    assert done.returncode != 0, done.stdout
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def import_json(state: Path, cwd: Path, *extra: str) -> dict[str, Any]:
    done = store_sql("import", state, "--db", "t.db", "--json", *extra, cwd=cwd)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def stored_bytes(db: Path) -> bytes:
    """Every blob and text cell of the tables import writes, concatenated."""
    with sqlite3.connect(db) as conn:
        cells = [
            row[0]
            for sql in (
                "SELECT content FROM opaque_files",
                "SELECT line FROM transcript_lines",
                "SELECT source_bytes FROM session_indexes",
                "SELECT compressed_bytes FROM transcripts",
            )
            for row in conn.execute(sql)
        ]
    return b"".join(c if isinstance(c, bytes) else str(c).encode() for c in cells if c)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    sessions = tmp_path / "state/agents/main/sessions"
    sessions.mkdir(parents=True)
    (sessions / f"{SID}.jsonl").write_bytes(HEADER)
    return tmp_path / "state"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the state dir holding a private file, laid out like a sessions dir."""
    folder = tmp_path / "elsewhere"
    (folder / "sessions").mkdir(parents=True)
    (folder / "sessions/id_rsa").write_bytes(SECRET)
    (folder / "id_rsa").write_bytes(SECRET)
    return folder


# ------------------------------------------------------------------ D3: symlinked directories


def test_import_follows_no_symlinked_agent_or_sessions_dir(
    state: Path, outside: Path, tmp_path: Path
) -> None:
    (state / "agents/evil").mkdir()
    (state / "agents/evil/sessions").symlink_to(outside / "sessions", target_is_directory=True)
    (state / "agents/evil2").symlink_to(outside, target_is_directory=True)
    (state / "sessions").symlink_to(outside / "sessions", target_is_directory=True)

    report = import_json(state, tmp_path)

    assert [f["rel_path"] for f in report["files"]] == [f"agents/main/sessions/{SID}.jsonl"]
    skipped = {
        Path(s["path"]).relative_to(state).as_posix(): s["reason"] for s in report["skipped"]
    }
    assert set(skipped) == {"agents/evil/sessions", "agents/evil2", "sessions"}
    assert all(r.startswith("symlinked directory (not followed") for r in skipped.values())
    assert SECRET not in stored_bytes(tmp_path / "t.db")


def test_a_symlinked_agents_dir_or_agent_dir_is_not_followed(tmp_path: Path, outside: Path) -> None:
    agents = outside / "agents/main/sessions"
    agents.mkdir(parents=True)
    (agents / "id_rsa.jsonl").write_bytes(HEADER + SECRET)
    (tmp_path / "state").mkdir()
    (tmp_path / "state/agents").symlink_to(outside / "agents", target_is_directory=True)

    reason = refused(store_sql("import", tmp_path / "state", "--db", "t.db", cwd=tmp_path))
    assert "holds no sessions dir" in reason
    assert "agents: symlinked directory" in reason

    # An agent dir given on the command line whose sessions/ is a symlink.
    agent_dir = tmp_path / "other/agents/ops"
    agent_dir.mkdir(parents=True)
    (agent_dir / "sessions").symlink_to(agents, target_is_directory=True)
    reason = refused(store_sql("import", agent_dir, "--db", "t.db", cwd=tmp_path))
    assert "sessions: symlinked directory" in reason
    assert not (tmp_path / "t.db").exists() or SECRET not in stored_bytes(tmp_path / "t.db")


def test_a_state_dir_named_through_a_symlink_is_imported(state: Path, tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(state, target_is_directory=True)
    report = import_json(tmp_path / "link", tmp_path)
    assert [f["status"] for f in report["files"]] == ["imported"]


# ------------------------------------------------------------------ D7: check-then-use races

# Runs until killed: swaps each given path between what is there and a symlink to TARGET,
# holding the symlink for a millisecond. A folder is moved aside and back (a symlink cannot
# replace a folder in one rename; a folder the exporter created meanwhile stays, the old one
# is left aside); a file is replaced by a symlink and back by one rename each ("file": back
# as a new file holding "inside"; "relink": back as the same file, through a hard link).
SWAPPER = r"""
import itertools, os, sys, time
target, kind, *paths = sys.argv[1:]
print("ready", flush=True)
for n in itertools.count():
    for path in paths:
        aside, link = f"{path}.aside{n}", f"{path}.link"
        try:
            if kind == "dir":
                os.rename(path, aside)
                os.symlink(target, path)
                time.sleep(0.001)
                os.unlink(path)
                os.rename(aside, path)  # fails when the exporter made a new one meanwhile
            elif kind == "relink":
                keep = f"{path}.keep"
                if n == 0:
                    os.link(path, keep)
                os.symlink(target, link)
                os.rename(link, path)
                time.sleep(0.001)
                os.link(keep, aside)
                os.rename(aside, path)
            else:
                os.symlink(target, link)
                os.rename(link, path)
                time.sleep(0.001)
                with open(aside, "wb") as f:
                    f.write(b"inside\n")
                os.rename(aside, path)
        except OSError:
            pass
"""


class Swapper:
    """A real process swapping folders or files for symlinks while the test imports or
    exports (the test's own thread never pauses it: two processes, two cores)."""

    def __init__(self, target: Path, kind: str, paths: list[Path]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SWAPPER, str(target), kind, *map(str, paths)],
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"ready\n"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


RACE_ROUNDS = 30
"""Imports or exports raced at least; more (up to `RACE_ROUNDS_MAX`) until one was hit."""
RACE_ROUNDS_MAX = 300


def test_export_writes_nothing_outside_out_while_a_folder_is_swapped_for_a_symlink(
    tmp_path: Path,
) -> None:
    sessions = tmp_path / "state/agents/main/sessions"
    sessions.mkdir(parents=True)
    for n in range(60):
        (sessions / f"note-{n:02}.txt").write_bytes(b"x" * 100)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "out"

    async def run() -> int:
        refused = 0
        async with await Store.open(tmp_path / "t.db") as store:
            await import_path(store, tmp_path / "state")
            await export_tree(store, out)  # OUT/agents/main exists before the swapping
            swapper = Swapper(outside, "dir", [out / "agents/main"])
            try:
                for n in range(RACE_ROUNDS_MAX):
                    report = await export_tree(store, out)
                    refused += len(report.refused)
                    if n + 1 >= RACE_ROUNDS and refused:
                        break
            finally:
                swapper.stop()
        return refused

    refused = asyncio.run(run())
    assert sorted(p.name for p in outside.rglob("*")) == []
    assert refused > 0  # the swap did land inside exports: they refused, not followed


def test_import_reads_nothing_outside_the_tree_while_files_are_swapped_for_symlinks(
    tmp_path: Path, outside: Path
) -> None:
    sessions = tmp_path / "state/agents/main/sessions"
    sessions.mkdir(parents=True)
    victims = [sessions / f"note-{n:02}.txt" for n in range(20)]
    for victim in victims:
        victim.write_bytes(b"inside\n")

    async def run() -> tuple[int, int]:
        leaked = errors = 0
        async with await Store.open(tmp_path / "t.db") as store:
            swapper = Swapper(outside / "id_rsa", "file", victims)
            try:
                for n in range(RACE_ROUNDS_MAX):
                    report = await import_path(store, tmp_path / "state")
                    errors += sum(f.status == "error" for f in report.files)
                    leaked += SECRET in stored_bytes(tmp_path / "t.db")
                    if n + 1 >= RACE_ROUNDS and errors:
                        break
            finally:
                swapper.stop()
        return leaked, errors

    leaked, errors = asyncio.run(run())
    assert leaked == 0
    assert errors > 0  # files swapped after the scan were refused, not followed


def race_imports(
    state: Path, db: Path, swapper: Swapper, *, until_error: bool = True
) -> tuple[int, int]:
    """Import `state` again and again while `swapper` runs: (imports that stored SECRET,
    files or databases reported as errors). `RACE_ROUNDS` imports, and more until one
    reports an error when `until_error`."""

    async def run() -> tuple[int, int]:
        leaked = errors = 0
        async with await Store.open(db) as store:
            try:
                for n in range(RACE_ROUNDS_MAX):
                    report = await import_path(store, state)
                    errors += sum(f.status == "error" for f in report.files)
                    errors += sum(d.status == "error" for d in report.databases)
                    leaked += SECRET in stored_bytes(db)
                    if n + 1 >= RACE_ROUNDS and (errors or not until_error):
                        break
            finally:
                swapper.stop()
        return leaked, errors

    return asyncio.run(run())


def sessions_directory(sessions: Path, count: int) -> list[Path]:
    """An active sessions.d with `count` entry files; their paths."""
    from store_sql.formats import sessions_dir

    folder = sessions / sessions_dir.DIRECTORY_NAME
    (folder / sessions_dir.ENTRIES_DIR).mkdir(parents=True)
    (folder / sessions_dir.STATE_FILE).write_bytes(sessions_dir.render_state(1, 1767225600000))
    files = []
    for n in range(count):
        key = f"agent:main:s{n}"
        entry = f'{{\n    "sessionId": "sid-{n}",\n    "updatedAt": {n + 1}\n  }}'
        path = folder / sessions_dir.ENTRIES_DIR / sessions_dir.entry_file_name(key)
        path.write_bytes(sessions_dir.render_entry_file(key, entry))
        files.append(path)
    return files


def test_sessions_d_files_swapped_for_symlinks_are_never_read(
    tmp_path: Path, outside: Path
) -> None:
    sessions = tmp_path / "state/agents/main/sessions"
    victims = sessions_directory(sessions, 20)
    swapper = Swapper(outside / "id_rsa", "file", victims)
    # A swapped entry file is skipped as the symlink it was, not reported as an error.
    leaked, _ = race_imports(tmp_path / "state", tmp_path / "t.db", swapper, until_error=False)
    assert leaked == 0


def test_a_sessions_d_folder_swapped_for_a_symlink_is_never_read(
    tmp_path: Path, outside: Path
) -> None:
    from store_sql.formats import sessions_dir

    sessions = tmp_path / "state/agents/main/sessions"
    sessions_directory(sessions, 5)
    elsewhere = outside / "sessions.d"
    sessions_directory(outside, 0)
    (elsewhere / sessions_dir.ENTRIES_DIR / "session-x.json").write_bytes(SECRET)
    folder = sessions / sessions_dir.DIRECTORY_NAME
    swapper = Swapper(elsewhere / sessions_dir.ENTRIES_DIR, "dir", [folder / "entries"])
    leaked, errors = race_imports(tmp_path / "state", tmp_path / "t.db", swapper)
    assert leaked == 0
    assert errors > 0  # the swapped folder was refused, not followed


# The shared reference material sits next to the repo (a worktree is one level deeper).
OPENCLAW_DB = next(
    (
        d / "shared/corpus/openclaw-2026.9/sample-state/migrated"
        for d in (ROOT.parent, ROOT.parent.parent)
        if (d / "shared/corpus/openclaw-2026.9/sample-state/migrated").is_dir()
    ),
    ROOT.parent / "shared/corpus/openclaw-2026.9/sample-state/migrated",
)


def test_an_agent_database_swapped_for_a_symlink_is_never_read(
    tmp_path: Path, outside: Path
) -> None:
    """OpenClaw's agent database is opened by SQLite, by path: the file SQLite opened must be
    the one reached through the tree, or the database is refused. The outside database is a
    valid one holding SECRET in an event, so a database read through the symlink would
    store it."""
    source = OPENCLAW_DB / "agents/main/agent/openclaw-agent.sqlite"
    if not source.is_file():
        pytest.skip(f"the shared corpus is not next to the repo ({OPENCLAW_DB})")
    inside = tmp_path / "state/agents/main/agent/openclaw-agent.sqlite"
    inside.parent.mkdir(parents=True)
    (tmp_path / "state/agents/main/sessions").mkdir()  # a state dir even while it is swapped
    shutil.copyfile(source, inside)
    foreign = outside / "openclaw-agent.sqlite"
    shutil.copyfile(source, foreign)
    with sqlite3.connect(foreign) as conn:
        event = json.dumps({"type": "message", "secret": SECRET.decode()})
        conn.execute("UPDATE transcript_events SET event_json = ?, event_zstd = NULL", (event,))
    conn.close()
    swapper = Swapper(foreign, "relink", [inside])
    leaked, errors = race_imports(tmp_path / "state", tmp_path / "t.db", swapper)
    assert leaked == 0
    assert errors > 0  # the database swapped in was refused, not read


def test_pre_migration_archives_swapped_for_symlinks_are_never_read(
    tmp_path: Path, outside: Path
) -> None:
    source = OPENCLAW_DB / "agents/main/agent/openclaw-agent.sqlite"
    if not source.is_file():
        pytest.skip(f"the shared corpus is not next to the repo ({OPENCLAW_DB})")
    agent = tmp_path / "state/agents/main"
    (agent / "agent").mkdir(parents=True)
    shutil.copyfile(source, agent / "agent/openclaw-agent.sqlite")
    archive = agent / "session-sqlite-import-archive"
    archive.mkdir()
    victims = [archive / f"old-{n:02}.jsonl" for n in range(20)]
    for victim in victims:
        victim.write_bytes(b"inside\n")
    swapper = Swapper(outside / "id_rsa", "file", victims)
    leaked, errors = race_imports(tmp_path / "state", tmp_path / "t.db", swapper)
    assert leaked == 0
    assert errors > 0


# ------------------------------------------------------------------ D6: names not UTF-8


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_reason_and_the_rest_imports(
    tmp_path: Path,
) -> None:
    state = Path(os.fsdecode(bytes(tmp_path) + b"/st\xfeate"))
    sessions = state / "agents/main/sessions"
    (sessions / os.fsdecode(b"prompts-\xff")).mkdir(parents=True)
    (sessions / os.fsdecode(b"prompts-\xff/x.txt")).write_bytes(b"prompt")
    (sessions / os.fsdecode(b"bad\xffname.jsonl")).write_bytes(HEADER)
    (sessions / f"{SID}.jsonl").write_bytes(HEADER)

    report = import_json(state, tmp_path)

    assert [(f["rel_path"], f["status"]) for f in report["files"]] == [
        (f"agents/main/sessions/{SID}.jsonl", "imported")
    ]
    skipped = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"bad\\xffname.jsonl", "prompts-\\xff"}
    assert all("not valid UTF-8" in r for r in skipped.values())
    assert report["source"].endswith("st\\xfeate")
    human = store_sql("import", state, "--db", "t.db", cwd=tmp_path)
    assert human.returncode == 0
    assert b"bad\\xffname.jsonl" in human.stdout
    verify = store_sql("verify", state, "--db", "t.db", "--json", cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["identical"]


# ------------------------------------------------------------------ D12: names export can write


def test_every_name_import_accepts_is_exported_and_the_others_are_skipped(
    state: Path, tmp_path: Path
) -> None:
    sessions = state / "agents/main/sessions"
    longest = "n" * 251 + ".txt"  # 255 bytes: the longest name Linux holds
    accepted = {longest: b"long", "nl\nname.txt": b"newline", "tab\tname.txt": b"tab"}
    for name, data in accepted.items():
        (sessions / name).write_bytes(data)
    (sessions / "back\\slash.txt").write_bytes(b"backslash")
    (sessions / "C:drive.txt").write_bytes(b"drive")

    report = import_json(state, tmp_path)
    skipped = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"back\\slash.txt", "C:drive.txt"}
    assert "contains a backslash, so export would refuse it" in skipped["back\\slash.txt"]
    assert "is absolute, so export would refuse it" in skipped["C:drive.txt"]

    done = store_sql("export", "out", "--db", "t.db", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    exported = tmp_path / "out/agents/main/sessions"
    assert {name: (exported / name).read_bytes() for name in accepted} == accepted
    assert sorted(p.name for p in exported.iterdir()) == sorted([*accepted, f"{SID}.jsonl"])


@pytest.mark.parametrize(
    "session_id",
    ["a\nb", "tab\there", "del\x7f", "y" * 129, "é" * 65],
    ids=["newline", "tab", "del", "129-bytes", "130-bytes-utf8"],
)
def test_session_ids_that_could_not_be_exported_are_refused(
    tmp_path: Path, session_id: str
) -> None:
    async def create() -> None:
        async with await Store.open(tmp_path / "t.db") as store:
            await store.transcripts.create("main", session_id, cwd="/w")

    with pytest.raises(InvalidEntryError, match="invalid session id"):
        asyncio.run(create())


def test_the_longest_session_id_exports_with_its_checkpoint_and_archive(tmp_path: Path) -> None:
    session_id = "s" * 128

    async def run() -> list[str]:
        async with await Store.open(tmp_path / "t.db") as store:
            await store.transcripts.create("main", session_id, cwd="/w")
            await store.transcripts.append_message("main", session_id, {"role": "user"})
            await store.sessions.patch(
                "main", "agent:main:main", {"sessionId": session_id, "updatedAt": 1}
            )
            await store.lifecycle.reset("main", "agent:main:main")
            report = await export_tree(store, tmp_path / "out")
            assert report.refused == []
            return [f.rel_path.rsplit("/", 1)[1] for f in report.files]

    names = asyncio.run(run())
    assert any(n.startswith(f"{session_id}.jsonl.reset.") for n in names), names


# ------------------------------------------------------------------ D11: export --session OUT


def test_export_of_one_session_to_a_directory_or_a_missing_folder_is_refused_in_one_line(
    state: Path, tmp_path: Path
) -> None:
    import_json(state, tmp_path)
    (tmp_path / "dir").mkdir()

    def export(out: str) -> str:
        return refused(store_sql("export", out, "--session", SID, "--db", "t.db", cwd=tmp_path))

    assert "dir is a directory: name the file to write" in export("dir")
    assert "names a directory" in export("new/")
    assert "the folder nope does not exist" in export("nope/x.jsonl")
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == []
    assert not (tmp_path / "new").exists()
    assert not (tmp_path / "nope").exists()
    done = store_sql("export", "dir/x.jsonl", "--session", SID, "--db", "t.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "dir/x.jsonl").read_bytes() == HEADER
