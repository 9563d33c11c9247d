"""The discovery file `<db>.serve`: where the server owning a database listens.

Written (0600, atomically) by `store-sql serve` once its socket is bound and removed when it
stops; clients on this machine (the CLI's writing commands, the gateway) read it to send
their work to that server instead of opening the database themselves. A file whose server
no longer answers (the process was killed) is stale: the client's `find_server`
(service/remote.py) ignores it. Reading the file takes no HTTP client: a command that finds
none works locally without loading one.

    {"pid": 4242, "url": "http://127.0.0.1:8765", "socket": null, "host": "127.0.0.1",
     "port": 8765, "tls": false, "tokenFile": "/data/store.sqlite.token"}
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

SUFFIX: Final = ".serve"


def serve_file(db: Path) -> Path:
    return db.with_name(db.name + SUFFIX)


@dataclass(frozen=True, slots=True)
class Address:
    socket_path: str | None
    host: str | None
    port: int | None
    tls: bool = False

    @classmethod
    def of_socket(cls, sock: socket.socket, *, tls: bool) -> Address:
        if sock.family == socket.AF_UNIX:
            return cls(str(sock.getsockname()), None, None, tls)
        host, port = sock.getsockname()[:2]
        return cls(None, str(host), int(port), tls)

    @property
    def url(self) -> str:
        if self.socket_path is not None:
            return f"unix:{self.socket_path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """What a discovery file says."""

    path: Path
    pid: int
    address: Address
    token_file: Path

    @property
    def url(self) -> str:
        return self.address.url


def write(db: Path, address: Address, token_file: Path) -> ServerRecord:
    target = serve_file(db)
    record = {
        "pid": os.getpid(),
        "url": address.url,
        "socket": address.socket_path,
        "host": address.host,
        "port": address.port,
        "tls": address.tls,
        "tokenFile": str(token_file),
    }
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, target)
    return ServerRecord(target, os.getpid(), address, token_file)


def read(db: Path) -> ServerRecord | None:
    """The discovery file's record, or None when there is none (or it is not ours)."""
    path = serve_file(db)
    try:
        data: Any = orjson.loads(path.read_bytes())
        address = Address(data["socket"], data["host"], data["port"], bool(data["tls"]))
        return ServerRecord(path, int(data["pid"]), address, Path(data["tokenFile"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove(record: ServerRecord) -> None:
    """Remove the discovery file if it is still the one this process wrote."""
    current = read_path(record.path)
    if current is not None and current.pid == record.pid:
        with contextlib.suppress(OSError):
            record.path.unlink()


def read_path(path: Path) -> ServerRecord | None:
    db = path.with_name(path.name[: -len(SUFFIX)])
    return read(db)
