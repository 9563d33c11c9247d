"""Running the service: `store-sql serve --db FILE [--socket PATH | --host H --port N]`.

The server owns the database: it opens the Store (the single writer and the reader pool),
binds its socket, writes the discovery file `<db>.serve` (0600) so that clients on this
machine find it, and serves until SIGTERM or SIGINT. Stopping is graceful: the listening
socket closes, requests in flight finish and are answered, event streams end, then the
Store closes, which commits everything queued. A write is acknowledged only after its
commit, so no acknowledged write is lost, however the process stops.

Safety rules: a unix socket is created 0600 (the owner only); a TCP address that is not
loopback is refused unless TLS files are given; every route but /v1/health needs the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import socket
import stat
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from store_sql.engine.pg.url import is_postgres_url
from store_sql.errors import StoreError
from store_sql.service import discovery
from store_sql.service.app import Service
from store_sql.service.auth import load_or_create_token
from store_sql.service.bodies import DEFAULT_MAX_BODY
from store_sql.service.page import PageApp
from store_sql.service.remote import find_server
from store_sql.service.state import ServiceConfig
from store_sql.store import Store

log = logging.getLogger("store_sql.service")

GRACE_SECONDS: Final = 30.0
"""How long requests in flight may take to finish once a stop is asked for."""
YOUNG_COLLECTION_THRESHOLD: Final = 20_000
"""Net new container objects between two collections of the youngest generation (CPython's
default is 700; see `settle_heap`)."""
KEEP_ALIVE_SECONDS: Final = 65
"""An idle connection stays open this long: longer than clients keep idle sockets (Node's
agent: 5 s by default), so a client never sends on a connection the server just closed."""


Announce = Callable[[dict[str, Any]], None]
"""Told once the server listens: {"db", "url", "pid"}."""


class ServeRefusedError(StoreError):
    """The server cannot start with these options (address, TLS, socket path)."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    db: Path | str
    """The SQLite file, or a PostgreSQL URL (several servers may serve one such database)."""
    socket: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body: int = DEFAULT_MAX_BODY
    full_text: bool = True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(options: ServeOptions) -> None:
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ServeRefusedError("TLS needs both --tls-cert and --tls-key")
    if options.socket is None and not is_loopback(options.host) and options.tls_cert is None:
        raise ServeRefusedError(
            f"refusing to listen on {options.host}, which is not a loopback address, "
            "without TLS: give --tls-cert and --tls-key, or use 127.0.0.1 or --socket"
        )


def bind_unix(path: Path) -> socket.socket:
    """A listening unix socket at `path`, mode 0600 from its creation on (umask), replacing
    a stale socket file but never another kind of file."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise ServeRefusedError(f"{path} exists and is not a socket; not replacing it")
        if _answers(path):
            raise ServeRefusedError(f"another server listens on {path}")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ServeRefusedError(f"cannot listen on {path}: {exc.strerror}") from exc
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeRefusedError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _OneWrite:
    """A transport that holds a response head until the body written right after it, so
    both leave in one write: one system call and one segment instead of two per answer.
    A head with no body after it in the same turn of the loop (HEAD, an event stream
    waiting for its first event) is written on the next turn; closing writes what is held
    first. Everything else is the transport's own."""

    __slots__ = ("_held", "_loop", "_raw")

    def __init__(self, raw: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._raw = raw
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._raw.write(held + data)
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._raw.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._raw.write(held)

    def close(self) -> None:
        self.flush()
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each answer in one piece (`_OneWrite`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _OneWrite(transport, self.loop)  # type: ignore[assignment]


class _Server(uvicorn.Server):
    """uvicorn's server with our stop: a signal asks the service to stop (event streams
    end, new requests are answered BUSY), and is not raised again once the server is down,
    so the Store still closes (and commits its queue) before the process exits."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM)
        for sig in handled:
            loop.add_signal_handler(sig, self.stop)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def stop(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        self.service.state.stop()


def settle_heap() -> None:
    """Set the garbage collector up for a long-running server, once it has started.

    Everything alive at this point (modules, the route table, the schema, the open Store)
    lives as long as the process, so it is frozen (`gc.freeze`): no collection walks it
    again, and a full collection walks only what requests made since. Refcounting frees
    almost everything a request allocates; the collector is there for cycles only. With a
    hundred requests in flight, each holding a task, a frame chain and its futures, the
    default threshold of 700 ran a young collection every few dozen requests, each walking
    those in-flight objects and promoting them, which then made full collections follow.
    A larger threshold runs it far less often for the same garbage found; cyclic garbage
    waits at most that many objects longer to be freed."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def uvicorn_config(
    app: ASGIApp, tls_cert: Path | None = None, tls_key: Path | None = None
) -> uvicorn.Config:
    """How `serve` runs uvicorn: httptools with each answer in one write, no access log,
    no proxy headers, no Server or Date header (tools/bench measures a constant answer
    under this same configuration as the floor of every HTTP row)."""
    return uvicorn.Config(
        app,
        lifespan="off",
        http=_Protocol,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(GRACE_SECONDS),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    db: Path | str
    token: str
    token_file: Path
    sock: socket.socket


def prepare(options: ServeOptions) -> _Prepared:
    """Everything before the event loop: check the options, make or read the token,
    refuse a database another server owns, bind the socket."""
    check_options(options)
    if isinstance(options.db, str) and is_postgres_url(options.db):
        # No file to put the token or the discovery file beside: the token file is named,
        # and any number of servers may write one PostgreSQL database.
        if options.token_file is None:
            raise ServeRefusedError("serving a PostgreSQL database needs --token-file")
        token = load_or_create_token(options.token_file)
        sock = bind_unix(options.socket) if options.socket else bind_tcp(options.host, options.port)
        return _Prepared(options.db, token, options.token_file, sock)
    db = Path(os.path.abspath(options.db))
    token_file = options.token_file or db.with_name(db.name + ".token")
    token = load_or_create_token(token_file)
    existing = find_server(db)
    if existing is not None:
        raise ServeRefusedError(
            f"{db} is already served by process {existing.pid} at {existing.url}"
        )
    sock = bind_unix(options.socket) if options.socket else bind_tcp(options.host, options.port)
    return _Prepared(db, token, token_file, sock)


async def run(
    options: ServeOptions,
    ready: _Prepared,
    announce: Announce | None = None,
) -> None:
    """Serve until stopped by a signal."""
    sock = ready.sock
    try:
        store = await Store.open(ready.db, full_text=options.full_text)
    except BaseException:
        sock.close()
        raise
    service = Service(store, ready.token, config=ServiceConfig(max_body=options.max_body))
    config = uvicorn_config(PageApp(service), options.tls_cert, options.tls_key)
    server = _Server(config, service)
    where = discovery.Address.of_socket(sock, tls=options.tls_cert is not None)
    marker = (
        discovery.write(ready.db, where, ready.token_file) if isinstance(ready.db, Path) else None
    )
    try:
        settle_heap()
        if announce is not None:
            announce({"db": store.location, "url": where.url, "pid": os.getpid()})
        await server.serve(sockets=[sock])
    finally:
        service.state.stop()
        try:
            await store.close()
        finally:
            if marker is not None:
                discovery.remove(marker)
            if options.socket is not None:
                with contextlib.suppress(OSError):
                    options.socket.unlink()


def main(options: ServeOptions, *, announce: Announce | None = None) -> None:
    """Prepare, then serve on uvloop."""
    import uvloop

    ready = prepare(options)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(options, ready, announce))
