#!/usr/bin/env python3
"""A throwaway PostgreSQL server for the tests and benchmarks.

    with ThrowawayPostgres() as server:
        url = server.url     # postgresql://postgres@/postgres?host=/tmp/store-sql-pg-XXXX

`initdb` writes a fresh cluster into a temporary folder and `pg_ctl` starts it listening on a
unix socket in that folder only (no TCP), trusting local connections, with the C collation
(bytewise order, the order SQLite's BINARY collation gives). Without `durable` the server
skips fsync: the tests need a database that behaves, not one that survives a power cut.

PostgreSQL refuses to run as root; as root the server runs as the `postgres` user (or
`nobody`) through `runuser`, in a folder owned by that user.

The server stops in `stop()` (or on leaving the `with`), and a watchdog stops it and removes
the folder when the process that started it dies without stopping it (kill -9, a crash), so
no run leaves a server behind. Servers left by a run that died before its watchdog started
are reaped by the next start.

`python3 tools/pg_server.py` starts one, prints its URL and stops it on Enter or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

URL_ENV = "STORE_SQL_TEST_PG"
"""The server's URL, set by `tools/dev.py test` for pytest (tests/conftest.py reads it)."""

PREFIX = "store-sql-pg-"
OWNER_FILE = "owner.pid"


class Unavailable(Exception):
    """No server can be started here (no PostgreSQL installed, or it failed to start)."""


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/N/bin
    (the newest N)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_as() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs PostgreSQL's programs as a user it accepts, with that
    user's uid and gid (None when no switch is needed)."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise Unavailable("running as root and neither runuser nor a postgres/nobody user exists")


def reap_stale(tmp: Path | None = None) -> list[Path]:
    """Stop the servers and remove the folders that dead runs left in the temp folder (their
    owner process is gone). Folders of live runs are left alone."""
    reaped = []
    for folder in Path(tmp or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        _stop_folder(folder)
        reaped.append(folder)
    return reaped


def _stop_folder(folder: Path) -> None:
    pid_file = folder / "data" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().split()[0])
        # SIGQUIT is PostgreSQL's immediate shutdown; SIGKILL if it does not go in time.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


class ThrowawayPostgres:
    """One PostgreSQL cluster in a temporary folder; see the module docstring."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.folder: Path | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._prefix: list[str] = []

    @property
    def url(self) -> str:
        if self.folder is None:
            raise RuntimeError("the server is not started")
        return f"postgresql://postgres@/postgres?host={self.folder}"

    def start(self) -> str:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise Unavailable(
                "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql)"
            )
        reap_stale()
        self._prefix, uid, gid = _run_as()
        folder = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.folder = folder
        (folder / OWNER_FILE).write_text(str(os.getpid()))
        if uid is not None and gid is not None:
            os.chown(folder, uid, gid)
        self._start_watchdog(folder)
        try:
            self._pg(
                bin_dir / "initdb",
                "-D", folder / "data",
                "--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-locale",
                "--no-sync", "--no-instructions",
            )  # fmt: skip
            settings = {
                "listen_addresses": "''",
                "unix_socket_directories": f"'{folder}'",
                "max_connections": "200",
                "shared_buffers": "64MB",
            }
            if not self.durable:
                settings |= {"fsync": "off", "full_page_writes": "off"}
            options = " ".join(f"-c {k}={v}" for k, v in settings.items())
            self._pg(
                bin_dir / "pg_ctl", "start", "-w", "-t", "60",
                "-D", folder / "data", "-l", folder / "server.log", "-o", options,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self.url

    def _pg(self, *args: str | Path) -> None:
        done = subprocess.run(
            [*self._prefix, *(str(a) for a in args)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            log = ""
            if self.folder is not None and (self.folder / "server.log").exists():
                log = (self.folder / "server.log").read_text(errors="replace")[-2000:]
            raise Unavailable(
                f"{Path(str(args[0])).name} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()} {log}".strip()
            )

    def _start_watchdog(self, folder: Path) -> None:
        """A small shell process that waits for this process to die and then stops the
        server; `stop()` ends it first."""
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"{shlex.quote(sys.executable)} {shlex.quote(__file__)} --reap"
        )
        self._watchdog = subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        """Stop the server at once (it is thrown away) and remove its folder. Idempotent."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self.folder is not None:
            _stop_folder(self.folder)
            self.folder = None

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def server_for_run(*, durable: bool = False) -> Iterator[str]:
    """The URL of the server a run uses: `$STORE_SQL_TEST_PG` when set, else a throwaway one
    started here and stopped on leaving (Unavailable where none can be started)."""
    given = os.environ.get(URL_ENV)
    if given:
        yield given
        return
    with ThrowawayPostgres(durable=durable) as server:
        yield server.url


def database_url(server_url: str, name: str) -> str:
    """`server_url` (postgresql://user@/db?query) with the database `name` instead."""
    head, _, query = server_url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="tools/pg_server.py",
        description="Start a throwaway PostgreSQL server, print its URL, stop it on Enter, "
        "Ctrl-C or end of input.",
    )
    parser.add_argument("--durable", action="store_true", help="keep fsync on")
    parser.add_argument(
        "--reap", action="store_true", help="stop servers left by dead runs, start none"
    )
    args = parser.parse_args(argv)
    if args.reap:
        reap_stale()
        return
    with ThrowawayPostgres(durable=args.durable) as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt, EOFError):
            input()


if __name__ == "__main__":
    main(sys.argv[1:])
