"""A real `store-sql serve` in a child process, for the service tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from store_sql.service import discovery, remote
from store_sql.service.remote import Answer, ServiceClient, segment

REPO = Path(__file__).resolve().parent.parent
STORE_SQL = Path(sys.executable).with_name("store-sql")


class RunningServer:
    """`store-sql serve --db DB` (TCP on a free loopback port, or a unix socket).

    With `url` (a PostgreSQL database) the server serves that instead, its token file beside
    `db`; it leaves no discovery file, so the address comes from its `--json` announcement."""

    def __init__(
        self,
        db: Path,
        *,
        socket: Path | None = None,
        extra: tuple[str, ...] = (),
        url: str | None = None,
    ):
        self.db = db
        self.socket = socket
        self.extra = extra
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: ServiceClient | None = None
        self.log = db.with_name(db.name + ".serve.log")

    def start(self, timeout: float = 30.0) -> RunningServer:
        if self.url is not None:
            return self._start_on_url(timeout)
        args = [str(STORE_SQL), "serve", "--db", str(self.db)]
        args += ["--socket", str(self.socket)] if self.socket else ["--port", "0"]
        args += list(self.extra)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.db.parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"store-sql serve exited: {self.log.read_text()[-2000:]}")
            record = discovery.read(self.db)
            if (
                record is not None
                and record.pid == self.proc.pid
                and remote.answers(record.address)
            ):
                self.record = record
                self.token = record.token_file.read_text().strip()
                self.client = ServiceClient(record.address, self.token, timeout=60)
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("store-sql serve did not start in time")

    def _start_on_url(self, timeout: float) -> RunningServer:
        assert self.url is not None
        token_file = self.db.with_name(self.db.name + ".token")
        args = [str(STORE_SQL), "serve", "--db", self.url, "--token-file", str(token_file)]
        args += ["--socket", str(self.socket)] if self.socket else ["--port", "0"]
        args += [*self.extra, "--json"]
        announced = self.db.with_name(self.db.name + ".announced")
        with announced.open("wb") as out, self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=out, stderr=log, cwd=self.db.parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"store-sql serve exited: {self.log.read_text()[-2000:]}")
            line = announced.read_text().strip()
            if line:
                where = json.loads(line)["url"]
                if where.startswith("unix:"):
                    address = discovery.Address(where.removeprefix("unix:"), None, None)
                else:
                    host, _, port = where.removeprefix("http://").rpartition(":")
                    address = discovery.Address(None, host, int(port))
                self.record = discovery.ServerRecord(announced, self.proc.pid, address, token_file)
                self.token = token_file.read_text().strip()
                self.client = ServiceClient(address, self.token, timeout=60)
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("store-sql serve did not start in time")

    @property
    def location(self) -> str | Path:
        """What the server serves: the PostgreSQL URL, else the SQLite file."""
        return self.url if self.url is not None else self.db

    def new_client(self) -> ServiceClient:
        return ServiceClient(self.record.address, self.token, timeout=60)

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Answer:
        assert self.client is not None
        return self.client.request(method, path, body, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.client is not None:
            self.client.close()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.kill()


def served_backend(
    request: Any, tmp_path_factory: Any, *, extra: tuple[str, ...] = ()
) -> RunningServer:
    """A (not yet started) server for a fixture parametrised on the backend (`sqlite`,
    `postgresql`): a SQLite file in a new temporary folder, or a fresh PostgreSQL database
    made for the fixture's scope (`pg_module_url`; its token file in the folder)."""
    db = tmp_path_factory.mktemp("svc") / "store.sqlite"
    url = request.getfixturevalue("pg_module_url") if request.param == "postgresql" else None
    return RunningServer(db, extra=extra, url=url)


def session_path(agent: str, key: str) -> str:
    return f"/v1/agents/{segment(agent)}/sessions/{segment(key)}"


def transcript_path(agent: str, session_id: str) -> str:
    return f"/v1/agents/{segment(agent)}/transcripts/{segment(session_id)}"


class EventStream:
    """A Server-Sent Events subscription read line by line (http.client, chunked)."""

    def __init__(
        self, server: RunningServer, path: str, headers: dict[str, str] | None = None
    ) -> None:
        self.conn = remote.connection(server.record.address, 30)
        sent = {"Authorization": f"Bearer {server.token}", "Accept": "text/event-stream"}
        sent.update(headers or {})
        self.conn.request("GET", path, headers=sent)
        self.response = self.conn.getresponse()
        self.status = self.response.status

    def next_event(self) -> dict[str, str]:
        """The next event (comments skipped): {"event", "id"?, "data"}."""
        event: dict[str, str] = {}
        data: list[str] = []
        while True:
            raw = self.response.readline()
            if not raw:
                raise EOFError("the event stream ended")
            line = raw.decode("utf-8").rstrip("\n")
            if line == "":
                if event or data:
                    event["data"] = "\n".join(data)
                    return event
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(": ")
            if field == "data":
                data.append(value)
            elif field in ("event", "id"):
                event[field] = value

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
