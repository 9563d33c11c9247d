"""The backup taken before a PostgreSQL store's schema is upgraded: `pg_dump` in its custom
format, the twin of the SQLite file's VACUUM INTO copy (engine/opening.py).

The dump goes to a private folder (0700) rather than beside a file, since a database on a
server has no folder of its own: the one given, else `$STORE_SQL_BACKUP_DIR`, else
`$XDG_STATE_HOME/store-sql/backups` (`~/.local/state/store-sql/backups`). It is named
`<database>.backup-<revision>-<UTC time>.dump`, written under a temporary name that is 0600
from its first byte and renamed when pg_dump has finished, so a partial dump never looks
like a complete one. `pg_restore` reads it back (`pg_restore --list FILE` shows what it holds).

pg_dump cannot dump a server newer than itself; where pg_dump is not on PATH, or is older
than the server, the upgrade goes on without a backup and says why (the report's
`backup_skipped`, and a warning on the `store_sql` logger). A pg_dump that starts and fails
refuses the upgrade instead: nothing is upgraded without the backup that was asked for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from store_sql.engine.file_modes import FILE_MODE, make_private_dirs
from store_sql.engine.pg.url import mask_password, split_password
from store_sql.errors import DatabaseRefusedError

log = logging.getLogger("store_sql")

DIRECTORY_ENV = "STORE_SQL_BACKUP_DIR"
"""Where upgrade backups of PostgreSQL stores go when no folder is given."""


@dataclass(frozen=True, slots=True)
class Backup:
    """What the backup before an upgrade came to: a file, or the reason there is none."""

    path: Path | None
    skipped: str | None


def default_directory() -> Path:
    """`$STORE_SQL_BACKUP_DIR`, else `$XDG_STATE_HOME/store-sql/backups`, else
    `~/.local/state/store-sql/backups`."""
    given = os.environ.get(DIRECTORY_ENV)
    if given:
        return Path(given)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "store-sql" / "backups"


_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def major_of_pg_dump(text: str) -> tuple[int, int] | None:
    """The major version `pg_dump --version` names: (15, 0) for 15.x, (9, 6) for 9.6.x."""
    found = _VERSION.search(text)
    if found is None:
        return None
    major = int(found.group(1))
    return (major, 0) if major >= 10 else (major, int(found.group(2) or 0))


def major_of_server(version_num: int) -> tuple[int, int]:
    """The major version of `server_version_num` (150004 -> (15, 0), 90624 -> (9, 6))."""
    if version_num >= 100000:
        return version_num // 10000, 0
    return version_num // 10000, version_num // 100 % 100


def _shown(major: tuple[int, int]) -> str:
    return str(major[0]) if major[0] >= 10 else f"{major[0]}.{major[1]}"


async def dump_before_upgrade(
    url: str,
    conn: asyncpg.Connection[asyncpg.Record],
    revision: str,
    directory: Path | None = None,
) -> Backup:
    """Dump the database at `url` (at schema `revision`) into `directory`; see the module
    docstring for where, and for when it is skipped."""
    program = shutil.which("pg_dump")
    if program is None:
        return _skipped("pg_dump is not on PATH")
    server = major_of_server(int(await conn.fetchval("SHOW server_version_num")))
    version_text = await _output(program, "--version")
    ours = major_of_pg_dump(version_text)
    if ours is None:
        return _skipped(f"{program} --version printed {version_text.strip()!r}, not a version")
    if ours < server:
        return _skipped(
            f"{program} is PostgreSQL {_shown(ours)}'s, older than the server "
            f"({_shown(server)}): pg_dump dumps only servers of its own major version or older"
        )
    folder = directory if directory is not None else default_directory()
    name = str(await conn.fetchval("SELECT current_database()"))
    try:
        target = await asyncio.to_thread(_new_target, folder, name, revision)
    except OSError as exc:
        raise _refusal(url, f"cannot make the backup folder {folder}: {exc}") from exc
    partial = target.with_name(f".{target.name}.partial")
    try:
        await _dump(program, url, partial)
        await asyncio.to_thread(os.replace, partial, target)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _refusal(url, f"cannot write {partial}: {exc}") from exc
        raise
    return Backup(target, None)


def _refusal(url: str, what: str) -> DatabaseRefusedError:
    return DatabaseRefusedError(
        f"{mask_password(url)}: the backup before the schema upgrade failed ({what}); nothing "
        "was upgraded. Fix it, or upgrade without a backup (`store-sql migrate --no-backup`)"
    )


def _skipped(reason: str) -> Backup:
    log.warning("no backup before the schema upgrade: %s", reason)
    return Backup(None, reason)


def _new_target(folder: Path, database: str, revision: str) -> Path:
    make_private_dirs(folder)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", database)
    target = folder / f"{safe}.backup-{revision}-{stamp}.dump"
    serial = 1
    while target.exists():  # two upgrades within one second must not overwrite a backup
        serial += 1
        target = folder / f"{safe}.backup-{revision}-{stamp}-{serial}.dump"
    return target


async def _output(program: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        program, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return out.decode("utf-8", "replace")


async def _dump(program: str, url: str, partial: Path) -> None:
    """pg_dump into `partial`, a file this process creates 0600 and hands over as stdout.
    The password travels in pg_dump's environment, not in its arguments."""
    bare, password = split_password(url)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    fd = os.open(
        partial,
        os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
        FILE_MODE,
    )
    try:
        os.fchmod(fd, FILE_MODE)
        proc = await asyncio.create_subprocess_exec(
            program, "--format=custom", "--no-owner", "--dbname", bare,
            stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=asyncio.subprocess.PIPE,
            env=env,
        )  # fmt: skip
        _, err = await proc.communicate()
    finally:
        os.close(fd)
    if proc.returncode != 0:
        said = err.decode("utf-8", "replace").strip().splitlines()
        raise _refusal(url, f"pg_dump exit {proc.returncode}: {said[-1] if said else 'no message'}")
