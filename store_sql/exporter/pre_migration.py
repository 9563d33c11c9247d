"""Export the state as it was before OpenClaw migrated it to SQLite (docs/FORMATS.md §6).

    report = await export_pre_migration(store, Path("/tmp/rollback"))
    print(report.not_in_archive)

For a user going back to a JSONL-era gateway. For each agent read from an
openclaw-agent.sqlite, the files OpenClaw moved into ``session-sqlite-import-archive/`` are
written back under the names they had in ``agents/<id>/sessions/``, byte for byte (the
archived ``sessions.json`` as ``sessions.json``, each ``<slug>.<name>.imported-<ms>`` as
``<name>``), next to the files the migration left in place (reset archives, backups, prompt
blobs). What the database made (its index, its transcripts) is not written: it is not what the
old gateway had. `ExportReport.not_in_archive` lists what the archive did not hold: no old
sessions.json, sessions with no transcript from before, files whose old name is unknown.
Agents never migrated are written as `export_tree` writes them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from store_sql.addresses import check_agent_id
from store_sql.engine.database import Database
from store_sql.exporter.api import ExportReport, make_root, write_planned
from store_sql.exporter.plan import PlannedFile, PreMigrationRows, plan_export
from store_sql.formats.import_archive import ARCHIVE_DIR, classify_archived

__all__ = ["export_pre_migration"]


async def export_pre_migration(
    store: Database, out: Path, *, agent: str | None = None, durable: bool = False
) -> ExportReport:
    """Write the pre-migration files of the store (or of `agent`) under `out`."""
    started = time.perf_counter()
    if agent is not None:
        check_agent_id(agent)
    out = Path(out)
    await asyncio.to_thread(make_root, out)
    if store.dialect == "postgresql":
        from store_sql.exporter import pg_rows

        async def read_pg(conn: Any) -> PreMigrationRows:
            return await pg_rows.pre_migration_rows(conn, agent)

        stored = await store.postgres.read(read_pg)
    else:
        stored = await store.read(lambda conn: pre_migration_rows(conn, agent))
    files, conflicts, lacking = plan_pre_migration(stored, agent)
    report = ExportReport(str(out), conflicts=conflicts, not_in_archive=lacking)
    await write_planned(store, out, files, report, durable=durable)
    report.duration_s = time.perf_counter() - started
    return report


def pre_migration_rows(conn: sqlite3.Connection, agent: str | None) -> PreMigrationRows:
    migrated = {row[0] for row in conn.execute("SELECT agent_id FROM agent_databases")}
    return PreMigrationRows(
        plan_export(conn, agent),
        migrated,
        {row[0] for row in conn.execute("SELECT transcript_id FROM database_transcripts")},
        conn.execute(
            "SELECT o.file_pk, o.agent_id, o.file_name, p.original_name, p.role, p.session_id "
            "FROM pre_migration_files p JOIN opaque_files o USING (file_pk) "
            "ORDER BY o.agent_id, o.file_name"
        ).fetchall(),
        {
            agent_id: conn.execute(
                "SELECT session_key, session_id FROM session_entries WHERE agent_id = ? "
                "ORDER BY position",
                (agent_id,),
            ).fetchall()
            for agent_id in migrated
        },
    )


def plan_pre_migration(
    stored: PreMigrationRows, agent: str | None
) -> tuple[list[PlannedFile], list[str], list[str]]:
    """(files to write, conflicts, what the archive lacked), files sorted by path."""
    planned, conflicts = stored.exported.files, stored.exported.conflicts
    migrated, from_database, archived = stored.migrated, stored.from_database, stored.archived
    archived_pks = {row[0] for row in archived}
    files: dict[str, PlannedFile] = {}
    for item in planned:
        if item.agent_id in migrated and item.source == "index":
            continue  # the database's index: replaced by the archived sessions.json
        if item.source in ("transcript", "compressed") and item.ref in from_database:
            continue
        if item.source == "opaque" and (
            item.ref in archived_pks or f"/{ARCHIVE_DIR}/" in item.rel_path
        ):
            continue
        files[item.rel_path] = item
    lacking: list[str] = []
    restored: dict[str, tuple[int, str]] = {}
    for pk, agent_id, name, original, _role, _ in archived:
        if agent is not None and agent_id != agent:
            continue
        if original is None:
            lacking.append(
                f"agents/{agent_id}/{ARCHIVE_DIR}/{name}: its name before the migration is "
                "unknown; not written"
            )
            continue
        rel = f"agents/{agent_id}/sessions/{original}"
        moved = classify_archived(name, header_id=None, moves={}).imported_ms or 0
        earlier = restored.get(rel)
        if earlier is not None:
            older, newer = sorted([earlier, (moved, name)])
            conflicts.append(
                f"{rel}: archived twice ({older[1]}, {newer[1]}); the later one is written"
            )
            if newer[1] != name:
                continue
        elif rel in files:
            conflicts.append(
                f"{rel}: in the archive and still in the sessions dir; the archived file is written"
            )
        restored[rel] = (moved, name)
        files[rel] = PlannedFile(rel, agent_id, "opaque", pk)
    for agent_id in sorted(migrated):
        if agent is not None and agent_id != agent:
            continue
        lacking.extend(_lacking(stored.sessions.get(agent_id, []), agent_id, files, archived))
    return [files[k] for k in sorted(files)], conflicts, lacking


def _lacking(
    sessions: list[tuple[str, str | None]],
    agent_id: str,
    files: dict[str, PlannedFile],
    archived: list[tuple[int, str, str, str | None, str, str | None]],
) -> list[str]:
    """What a migrated agent's archive did not hold."""
    lacking: list[str] = []
    mine = [row for row in archived if row[1] == agent_id]
    if not any(row[4] == "index" and row[3] is not None for row in mine):
        lacking.append(
            f"agents/{agent_id}/sessions/sessions.json: the archive holds no sessions.json"
        )
    have = {row[5] for row in mine if row[4] == "transcript" and row[3] is not None}
    prefix = f"agents/{agent_id}/sessions/"
    for rel in files:
        if rel.startswith(prefix) and rel.endswith(".jsonl"):
            have.add(rel.removeprefix(prefix).removesuffix(".jsonl"))
    for key, session_id in sessions:
        if session_id is not None and session_id not in have:
            lacking.append(
                f"agent {agent_id} session {key!r} ({session_id}): no transcript from before "
                "the migration (made since, or it had none)"
            )
    return lacking
