"""What `store-sql doctor` reports: checks, their statuses, the verdict and its exit code.

Each check gives ok / info / warn / error; the worst decides the exit status (0 healthy,
1 warnings, 2 errors). A check is either one of the store's own (`backend` "both": the
same name, statuses and details for the same logical data on SQLite and on PostgreSQL,
admin/store_checks.py), or one that only one backend has ("sqlite": the library, the files,
the WAL, integrity_check; "postgresql": the server, its text rules, the reader role).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

OK, INFO, WARN, ERROR = "ok", "info", "warn", "error"
_RANK = {OK: 0, INFO: 0, WARN: 1, ERROR: 2}

BOTH, SQLITE, POSTGRESQL = "both", "sqlite", "postgresql"
"""Which backends run a check."""

_BACKEND_NAMES = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    backend: str = BOTH


def _verdict(checks: list[Check]) -> str:
    worst = max((_RANK[c.status] for c in checks), default=0)
    return {0: OK, 1: WARN, 2: ERROR}[worst]


@dataclass(frozen=True, slots=True)
class DoctorReport:
    path: str
    checks: list[Check]

    @property
    def status(self) -> str:
        return _verdict(self.checks)

    @property
    def exit_code(self) -> int:
        return _RANK[self.status]

    @property
    def store_status(self) -> str:
        """The verdict of the store's own checks alone (those both backends run)."""
        return _verdict([c for c in self.checks if c.backend == BOTH])

    @property
    def backend_only(self) -> list[str]:
        """The names of the checks only this report's backend runs."""
        return [c.name for c in self.checks if c.backend != BOTH]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "exit_code": self.exit_code,
            "store_status": self.store_status,
            "backend_only": self.backend_only,
            "checks": [
                {
                    "name": c.name,
                    "status": c.status,
                    "summary": c.summary,
                    "details": c.details,
                    "backend": c.backend,
                }
                for c in self.checks
            ],
        }


def format_report(report: DoctorReport) -> str:
    """The human form: one line per check, the backend-only ones named, then the verdict."""
    lines = [f"store-sql doctor: {report.path}"]
    width = max(len(c.name) for c in report.checks)
    indent = " " * (width + 9)
    for c in report.checks:
        head = f"{c.status.upper():<5}  {c.name:<{width}}  "
        lines.append(textwrap.fill(c.summary, 100, initial_indent=head, subsequent_indent=indent))
    only = {c.backend for c in report.checks if c.backend != BOTH}
    for backend in sorted(only):
        names = ", ".join(c.name for c in report.checks if c.backend == backend)
        lines.append(f"{_BACKEND_NAMES[backend]} only: {names}")
    verdict = {OK: "healthy", WARN: "warnings", ERROR: "errors"}
    lines.append(
        f"result: {verdict[report.status]} (exit {report.exit_code}); "
        f"the store's own checks: {verdict[report.store_status]}"
    )
    return "\n".join(lines)
