"""What an import did: one record per file, the files it skipped, totals, and progress.

`ImportReport.as_dict()` is the machine-readable report of `store-sql import --json`
(files, entries, bytes, damaged lines with positions, skipped files, duration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from store_sql.importer.chunks import LineStats

FileStatus = Literal[
    "imported", "unchanged", "appended", "new_version", "skipped", "kept_opaque", "error"
]
"""imported: new in the store; unchanged: nothing written; appended: the file only grew and
its new lines were added; new_version: the file changed in the middle (or the store has API
appends beyond it) and was stored as a new version superseding the old one; kept_opaque:
stored as exact bytes only (backups, sidecars, prompt blobs, unknown or unreadable files);
skipped: not imported on purpose; error: not imported, see `message`."""

MAX_DAMAGED_LISTED = 1000
"""A file lists at most this many damaged lines; `damaged_total` counts them all."""


@dataclass(slots=True)
class FileReport:
    """The outcome for one source file."""

    path: str
    """The source file as given or found on disk."""
    rel_path: str
    """Where export writes it, relative to the state dir (``agents/main/sessions/x.jsonl``)."""
    agent: str
    kind: str
    """The file's role (`state_dir.FileKind` value: live, topic, sessions_index, backup, ...)."""
    status: FileStatus = "imported"
    lines: int = 0
    """Lines read from the source in this run (only the new ones when appended)."""
    entries: int = 0
    """Transcript entries, or session-index entries, among them."""
    bytes: int = 0
    """Source bytes read in this run."""
    damaged: list[tuple[int, str]] = field(default_factory=list)
    """(1-based line number, reason) of lines kept verbatim because they are not JSON objects
    (glued records, torn lines, invalid UTF-8) or are blank; at most `MAX_DAMAGED_LISTED`."""
    damaged_total: int = 0
    message: str | None = None
    """Anything else worth saying: a conflict, a replaced version, CRLF, a missing newline."""
    transcript_id: int | None = None
    entry_files: dict[str, list[str]] | None = None
    """For a sessions.d: entry file names by what happened to them (added, changed, removed,
    conflicts, ignored as ``name: why``, skipped as ``name: why``)."""

    def add_damage(self, line_no: int, reason: str) -> None:
        self.damaged_total += 1
        if len(self.damaged) < MAX_DAMAGED_LISTED:
            self.damaged.append((line_no, reason))

    def note(self, text: str) -> None:
        self.message = text if not self.message else f"{self.message}; {text}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rel_path": self.rel_path,
            "agent": self.agent,
            "kind": self.kind,
            "status": self.status,
            "lines": self.lines,
            "entries": self.entries,
            "bytes": self.bytes,
            "damaged": [{"line": n, "reason": r} for n, r in self.damaged],
            "damaged_total": self.damaged_total,
            "message": self.message,
            "transcript_id": self.transcript_id,
            **({"entry_files": self.entry_files} if self.entry_files is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class SkippedSource:
    """A directory entry that was not imported at all, and why."""

    path: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason}


@dataclass(slots=True)
class DatabaseReport:
    """What was read from one agent's openclaw-agent.sqlite (docs/FORMATS.md §6)."""

    agent: str
    path: str
    status: Literal["read", "error"] = "read"
    schema_version: int | None = None
    app_version: str | None = None
    sessions: int = 0
    """Session keys in its session_nodes."""
    transcripts: int = 0
    """Transcripts read from transcript_events (and cold storage)."""
    events: int = 0
    """Events imported in this run (only the new ones on a re-import)."""
    archives: int = 0
    """Archived transcripts (session_transcript_archives) it holds."""
    cold_archives: int = 0
    pre_migration_files: int = 0
    """Legacy files OpenClaw moved into session-sqlite-import-archive/, kept as they are."""
    message: str | None = None

    def note(self, text: str) -> None:
        self.message = text if not self.message else f"{self.message}; {text}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "path": self.path,
            "status": self.status,
            "schema_version": self.schema_version,
            "app_version": self.app_version,
            "sessions": self.sessions,
            "transcripts": self.transcripts,
            "events": self.events,
            "archives": self.archives,
            "cold_archives": self.cold_archives,
            "pre_migration_files": self.pre_migration_files,
            "message": self.message,
        }


@dataclass(slots=True)
class ImportReport:
    """Everything one `import_path` call did (or, with ``dry_run``, would do)."""

    source: str
    dry_run: bool
    files: list[FileReport] = field(default_factory=list)
    skipped: list[SkippedSource] = field(default_factory=list)
    databases: list[DatabaseReport] = field(default_factory=list)
    """One record per agent database read (today's gateway keeps its state in SQLite)."""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """No file and no database ended in error."""
        return all(f.status != "error" for f in self.files) and all(
            d.status != "error" for d in self.databases
        )

    @property
    def totals(self) -> dict[str, int]:
        """Counts over every file: files, skipped, lines, entries, bytes, damaged, errors,
        and `status_<status>` per status seen."""
        by_status: dict[str, int] = {}
        for f in self.files:
            by_status[f.status] = by_status.get(f.status, 0) + 1
        return {
            "files": len(self.files),
            "skipped": len(self.skipped),
            "lines": sum(f.lines for f in self.files),
            "entries": sum(f.entries for f in self.files),
            "bytes": sum(f.bytes for f in self.files),
            "damaged": sum(f.damaged_total for f in self.files),
            "errors": by_status.get("error", 0),
            **{f"status_{k}": v for k, v in sorted(by_status.items())},
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "duration_s": round(self.duration_s, 6),
            "totals": self.totals,
            "files": [f.as_dict() for f in self.files],
            "skipped": [s.as_dict() for s in self.skipped],
            "databases": [d.as_dict() for d in self.databases],
        }


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Handed to the `progress` callback after every chunk and every file."""

    file_index: int
    """0-based index of the file being imported."""
    file_count: int
    rel_path: str
    bytes_done: int
    """Source bytes read so far, all files together."""
    bytes_total: int
    """Size of every planned file together (known before the import starts)."""
    lines_done: int


def add_line_stats(record: FileReport, stats: LineStats) -> None:
    """Copy what a `LineChunker` saw into a file's record (damaged lines become 1-based)."""
    record.lines = stats.lines
    record.entries = stats.entries
    record.bytes = stats.bytes
    for pos, reason in stats.damaged:
        record.add_damage(pos + 1, reason)
    record.damaged_total = stats.damaged_total
    if stats.crlf_lines:
        record.note(f"{stats.crlf_lines} lines end with CRLF (kept)")
    if stats.bom:
        record.note("the file starts with a byte order mark (kept)")
    if stats.lines and not stats.ends_with_newline:
        record.note("no newline at the end of the file (kept)")
