"""A small blocking client of the service (standard library only): the CLI's way to send its
writing commands to the server that owns a database, and the tests' and benchmarks' way in.

One `ServiceClient` keeps one keep-alive connection; it is not shared between threads.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import orjson

from store_sql.errors import (
    ConflictError,
    InvalidEntryError,
    NotFoundError,
    StoreError,
    WriteFailedError,
)
from store_sql.service import discovery
from store_sql.service.auth import read_token
from store_sql.service.discovery import Address, ServerRecord

TIMEOUT_SECONDS = 600.0
"""Long enough for an import or a cleanup the server runs for the caller."""

PROBE_SECONDS: Final = 2.0


class ServiceUnreachableError(StoreError):
    """The server stopped answering mid-call: the work may or may not have been done."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


def segment(value: str) -> str:
    """A path segment: every character but unreserved ones percent-encoded (`/` too)."""
    return quote(value, safe="")


class ServiceClient:
    def __init__(self, address: Address, token: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.address = address
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    @classmethod
    def for_database(cls, db: Path, token_file: Path | None = None) -> ServiceClient | None:
        """A client of the server serving `db`, or None when no server answers for it."""
        record = find_server(db)
        if record is None:
            return None
        return cls(record.address, read_token(token_file or record.token_file))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        auth: bool = True,
    ) -> Answer:
        """One request; `body` is sent as JSON (or `raw` as is). Reconnects once when a
        kept-alive connection was closed by the server before the request was sent."""
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        payload = raw if raw is not None else (None if body is None else orjson.dumps(body))
        sent = {"Content-Type": "application/json"} if payload is not None else {}
        if auth:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or connection(self.address, self.timeout)
            self._conn = conn
            try:
                conn.request(method, path, body=payload, headers=sent)
                response = conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.close()
                # A kept-alive connection the server closed while idle fails before the
                # request is read: sent again once on a new connection.
                if reused and attempt == 1 and _closed_while_idle(exc):
                    continue
                raise ServiceUnreachableError(
                    f"{self.address.url} did not answer {method} {path}: {exc}"
                ) from exc
            if response.will_close:
                self.close()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """`request`, answering the JSON result or raising the StoreError its error names."""
        answer = self.request(method, path, body, **kwargs)
        if answer.status < 300:
            return answer.json()
        raise error_of(answer)


def _closed_while_idle(exc: BaseException) -> bool:
    return isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError)


def error_of(answer: Answer) -> StoreError:
    try:
        error = orjson.loads(answer.body)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "INTERNAL", answer.body.decode("utf-8", "replace")[:200]
    kind: type[StoreError] = {
        "INVALID": InvalidEntryError,
        "NOT_FOUND": NotFoundError,
        "CONFLICT": ConflictError,
        "BUSY": WriteFailedError,
        "TOO_LARGE": InvalidEntryError,
    }.get(code, StoreError)
    return kind(f"{message} (server: {answer.status} {code})")


def find_server(db: Path) -> ServerRecord | None:
    """The server serving `db`, if its discovery file exists and it answers /v1/health."""
    record = discovery.read(db)
    if record is None:
        return None
    return record if answers(record.address) else None


def connection(address: Address, timeout: float) -> http.client.HTTPConnection:
    """An HTTP connection to the address (unix socket, TCP or TLS)."""
    if address.socket_path is not None:
        return UnixConnection(address.socket_path, timeout)
    assert address.host is not None
    assert address.port is not None
    if address.tls:
        context = ssl.create_default_context()
        # A local server's certificate is usually self-signed for 127.0.0.1: the token,
        # not the certificate, is what authenticates on this machine.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(
            address.host, address.port, timeout=timeout, context=context
        )
    return http.client.HTTPConnection(address.host, address.port, timeout=timeout)


def answers(address: Address) -> bool:
    conn = connection(address, PROBE_SECONDS)
    try:
        conn.request("GET", "/v1/health")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class UnixConnection(http.client.HTTPConnection):
    """http.client over a unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock
