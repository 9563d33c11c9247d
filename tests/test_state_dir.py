"""State directory layout: file names, sessions dirs, walking, and safe export paths."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from store_sql.formats.state_dir import (
    ClassifiedFile,
    FileKind,
    SessionsDir,
    SkippedFile,
    StateDirError,
    archive_name,
    classify_name,
    find_sessions_dirs,
    safe_join,
    walk_sessions_dir,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SAMPLE_STATE = CORPUS / "sample-state"
NO_CORPUS = pytest.mark.skipif(
    not SAMPLE_STATE.is_dir(), reason=f"sample state not found at {SAMPLE_STATE}"
)
SID = "4a24ada5-df64-4801-a672-65bda22a45b4"
UUID = "7d5e2c3a-359d-4638-aba7-aaa6c853ff09"


@NO_CORPUS
def test_every_corpus_name_classifies_as_the_gateway_wrote_it() -> None:
    names = sorted(p.name for p in SAMPLE_STATE.glob("agents/*/sessions/*") if p.is_file())
    assert len(names) == 28
    for name in names:
        found = classify_name(name)
        assert found.name == name
        if name == "sessions.json":
            assert found.kind is FileKind.SESSIONS_INDEX
        elif name.endswith(".jsonl"):
            assert (found.kind, found.session_id) == (FileKind.LIVE, name.removesuffix(".jsonl"))
        else:
            session_id, _, when = name.partition(".jsonl.reset.")
            assert (found.kind, found.session_id, found.archived_at) == (
                FileKind.RESET_ARCHIVE,
                session_id,
                when,
            )
            assert not found.compressed


@NO_CORPUS
def test_archive_name_reproduces_every_corpus_reset_archive() -> None:
    archives = sorted(SAMPLE_STATE.glob("agents/*/sessions/*.reset.*"))
    assert len(archives) == 6
    for path in archives:
        found = classify_name(path.name)
        assert found.archived_at is not None
        day, clock = found.archived_at.split("T")
        when = datetime.fromisoformat(f"{day}T{clock[:8].replace('-', ':')}{clock[8:-1]}+00:00")
        assert archive_name(f"{found.session_id}.jsonl", "reset", when) == path.name


TS = "2026-02-10T10-51-08.679Z"
K = FileKind
FORK = f"2026-02-10T10-51-08-679Z_{UUID}.jsonl"
NAME_SHAPES = [
    # name                                     kind             session topic   ckpt  archived .zst
    ("sessions.json",                          K.SESSIONS_INDEX, None,  None,    None, None, False),
    (f"{SID}.jsonl",                           K.LIVE,           SID,   None,    None, None, False),
    (f"{SID}-topic-42.jsonl",                  K.TOPIC,          SID,   "42",    None, None, False),
    (f"{SID}-topic-a%2Fb%20%C3%A9.jsonl",      K.TOPIC,          SID,   "a/b é", None, None, False),
    (FORK,                                     K.FORK,           UUID,  None,    None, None, False),
    (f"{SID}.checkpoint.{UUID}.jsonl",         K.CHECKPOINT,     SID,   None,    UUID, None, False),
    (f"{SID}.jsonl.reset.{TS}",                K.RESET_ARCHIVE,  SID,   None,    None, TS,   False),
    (f"{SID}.jsonl.reset.{TS}.zst",            K.RESET_ARCHIVE,  SID,   None,    None, TS,   True),
    (f"{SID}.jsonl.deleted.{TS}",              K.DELETED_ARCHIVE, SID,  None,    None, TS,   False),
    (f"{SID}-topic-7.jsonl.deleted.{TS}.zst",  K.DELETED_ARCHIVE, SID,  "7",     None, TS,   True),
    (f"{SID}.jsonl.deleted.2026-02-10T10-51-08Z", K.DELETED_ARCHIVE, SID, None,  None,
     "2026-02-10T10-51-08Z", False),
    (f"{SID}.trajectory.jsonl",                K.TRAJECTORY,     SID,   None,    None, None, False),
    (f"{SID}.trajectory-path.json",            K.TRAJECTORY,     SID,   None,    None, None, False),
    ("sessions.json.bak.1712345678",           K.BACKUP,         None,  None,    None, None, False),
    ("sessions.json.backup",                   K.BACKUP,         None,  None,    None, None, False),
    (f"{SID}.jsonl.bak-before-repair",         K.BACKUP,         SID,   None,    None, None, False),
    (f"{SID}.jsonl.bak.{TS}",                  K.BACKUP,         SID,   None,    None, TS,   False),
    ("sessions.json.lock",                     K.LOCK_OR_TEMP,   None,  None,    None, None, False),
    (f"{SID}.jsonl.lock",                      K.LOCK_OR_TEMP,   None,  None,    None, None, False),
    (f"sessions.json.4242.{UUID}.tmp",         K.LOCK_OR_TEMP,   None,  None,    None, None, False),
    ("skills-prompts/sha256/ab/ab12ef.txt",    K.SKILL_PROMPT,   None,  None,    None, None, False),
    ("skills-prompts/sha256/ab/ab1.txt.tmp",   K.LOCK_OR_TEMP,   None,  None,    None, None, False),
    ("notes/todo.jsonl",                       K.OTHER,          None,  None,    None, None, False),
    (f"{SID}.jsonl.reset.yesterday",           K.OTHER,          None,  None,    None, None, False),
    ("README.md",                              K.OTHER,          None,  None,    None, None, False),
]  # fmt: skip


@pytest.mark.parametrize("shape", NAME_SHAPES, ids=[row[0] for row in NAME_SHAPES])
def test_classify_name(
    shape: tuple[str, FileKind, str | None, str | None, str | None, str | None, bool],
) -> None:
    assert classify_name(shape[0]) == ClassifiedFile(*shape)


def test_archive_name_is_utc_with_truncated_milliseconds() -> None:
    when = datetime(2026, 2, 10, 11, 51, 8, 679_999, tzinfo=timezone(timedelta(hours=1)))
    assert archive_name("x.jsonl", "deleted", when) == "x.jsonl.deleted.2026-02-10T10-51-08.679Z"
    assert archive_name("x.jsonl", "reset", datetime(2026, 1, 2, tzinfo=UTC)) == (
        "x.jsonl.reset.2026-01-02T00-00-00.000Z"
    )
    with pytest.raises(ValueError, match="timezone"):
        archive_name("x.jsonl", "reset", datetime(2026, 1, 2))


# ------------------------------------------------------------------ sessions dirs


@NO_CORPUS
def test_state_dir_lists_every_agent_sessions_dir() -> None:
    assert find_sessions_dirs(SAMPLE_STATE) == [
        SessionsDir("main", "agents/main/sessions", SAMPLE_STATE / "agents/main/sessions"),
        SessionsDir("ops", "agents/ops/sessions", SAMPLE_STATE / "agents/ops/sessions"),
    ]
    assert [d.agent_id for d in find_sessions_dirs(SAMPLE_STATE, agent="ops")] == ["ops"]


@NO_CORPUS
def test_a_sessions_dir_takes_its_agent_from_the_path() -> None:
    ops = SAMPLE_STATE / "agents/ops/sessions"
    assert find_sessions_dirs(ops) == [SessionsDir("ops", "agents/ops/sessions", ops)]
    with pytest.raises(StateDirError, match="belongs to agent 'ops'"):
        find_sessions_dirs(ops, agent="main")


def test_legacy_sessions_dir_belongs_to_main(tmp_path: Path) -> None:
    (tmp_path / "sessions").mkdir()
    (tmp_path / "agents/work/sessions").mkdir(parents=True)
    assert find_sessions_dirs(tmp_path) == [
        SessionsDir("work", "agents/work/sessions", tmp_path / "agents/work/sessions"),
        SessionsDir("main", "sessions", tmp_path / "sessions"),
    ]


def test_an_agent_dir_and_an_empty_sessions_dir_are_recognised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = tmp_path / "agents/work/sessions"
    sessions.mkdir(parents=True)
    expected = [SessionsDir("work", "agents/work/sessions", sessions)]
    assert find_sessions_dirs(sessions) == expected
    assert find_sessions_dirs(tmp_path / "agents/work") == expected
    monkeypatch.chdir(sessions)
    assert find_sessions_dirs(Path(".")) == [SessionsDir("work", "agents/work/sessions", Path("."))]


def test_a_loose_sessions_dir_needs_an_agent(tmp_path: Path) -> None:
    loose = tmp_path / "copy"
    loose.mkdir()
    (loose / "sessions.json").write_bytes(b"{}")
    with pytest.raises(StateDirError, match="say which agent"):
        find_sessions_dirs(loose)
    assert find_sessions_dirs(loose, agent="ops") == [
        SessionsDir("ops", "agents/ops/sessions", loose)
    ]


def test_a_directory_that_is_neither_is_refused(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"")
    with pytest.raises(StateDirError, match="neither a state directory"):
        find_sessions_dirs(tmp_path)
    with pytest.raises(StateDirError, match="not a directory"):
        find_sessions_dirs(tmp_path / "photo.jpg")
    (tmp_path / "agents").mkdir()
    with pytest.raises(StateDirError, match="holds no sessions dir"):
        find_sessions_dirs(tmp_path)


# ------------------------------------------------------------------ walking


def test_walk_yields_regular_files_sorted_and_skips_escapes(tmp_path: Path) -> None:
    root = tmp_path / "agents/main/sessions"
    prompts = root / "skills-prompts/sha256/ab"
    prompts.mkdir(parents=True)
    (prompts / "abcd.txt").write_bytes(b"prompt")
    (root / f"{SID}.jsonl").write_bytes(b"{}\n")
    (root / "sessions.json").write_bytes(b"{}")
    (root / "sessions.json.lock").write_bytes(b"")
    (tmp_path / "secret").write_bytes(b"outside")
    (root / "escape.jsonl").symlink_to(tmp_path / "secret")
    (root / "inside.jsonl").symlink_to(root / "sessions.json")
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "dangling.jsonl").symlink_to(root / "missing")
    os.mkfifo(root / "pipe")
    skipped: list[SkippedFile] = []
    walked = list(
        walk_sessions_dir(SessionsDir("main", "agents/main/sessions", root), skipped=skipped)
    )
    assert [(f.path.relative_to(root).as_posix(), c.kind) for f, c in walked] == [
        (f"{SID}.jsonl", FileKind.LIVE),
        ("inside.jsonl", FileKind.LIVE),
        ("sessions.json", FileKind.SESSIONS_INDEX),
        ("sessions.json.lock", FileKind.LOCK_OR_TEMP),
        ("skills-prompts/sha256/ab/abcd.txt", FileKind.SKILL_PROMPT),
    ]
    inside = next(f for f, c in walked if c.name == "inside.jsonl")
    with inside.open() as f:
        assert f.read() == b"{}"  # read through the tree from the link's target
    assert sorted((s.name, s.reason.split(" (")[0]) for s in skipped) == [
        ("dangling.jsonl", "broken symlink"),
        ("escape.jsonl", "symlink leaving the sessions dir"),
        ("loop", "symlink to a directory"),
        ("pipe", "not a regular file"),
    ]


# ------------------------------------------------------------------ safe_join


@pytest.mark.parametrize(
    "rel",
    ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\\b", "a\x00b", "C:x", ".."],
)
def test_safe_join_refuses_unsafe_names(tmp_path: Path, rel: str) -> None:
    with pytest.raises(StateDirError):
        safe_join(tmp_path, rel)


def test_safe_join_refuses_a_symlink_out_of_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(StateDirError, match="resolves outside"):
        safe_join(root, "out/x.jsonl")


def test_safe_join_accepts_nested_names(tmp_path: Path) -> None:
    rel = "agents/main/sessions/skills-prompts/sha256/ab/abcd.txt"
    assert safe_join(tmp_path, rel) == tmp_path / rel
    assert safe_join(tmp_path, "x.jsonl.reset.2026-02-10T10-51-08.679Z").parent == tmp_path
