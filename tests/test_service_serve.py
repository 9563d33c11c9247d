"""How `store-sql serve` starts: unix socket mode, loopback and TLS rules, the token file.

SQLite only: these are the transport's and its files' rules, the same whatever is served
(a server on PostgreSQL starts and answers in test_service_transcripts.py and friends)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from serving import RunningServer

from store_sql.service import discovery
from store_sql.service.remote import ServiceClient

STORE_SQL = Path(sys.executable).with_name("store-sql")


def serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STORE_SQL), "serve", "--db", "store.sqlite", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unix_socket_is_private(tmp_path: Path) -> None:
    sock = tmp_path / "store.sock"
    with RunningServer(tmp_path / "store.sqlite", socket=sock) as server:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert server.record.address.socket_path == str(sock)
        assert server.request("GET", "/v1/agents").status == 200
    assert not sock.exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--host", "0.0.0.0"), "not a loopback address"),
        (("--host", "192.0.2.1"), "not a loopback address"),
        (("--port", "0", "--tls-cert", "c.pem"), "TLS needs both"),
    ],
)
def test_refused_without_tls(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    done = serve(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store.sqlite.serve").exists()


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "store.sqlite.token"
    token.write_text("secret-token\n")
    token.chmod(0o644)
    done = serve("--port", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert "chmod 600" in done.stderr


def test_a_given_token_file_is_used(tmp_path: Path) -> None:
    token = tmp_path / "my.token"
    token.write_text("my-own-token\n")
    token.chmod(0o600)
    db = tmp_path / "store.sqlite"
    with RunningServer(db, extra=("--token-file", str(token))) as server:
        assert server.token == "my-own-token"
        assert server.request("GET", "/v1/agents").status == 200
    assert not db.with_name("store.sqlite.token").exists()


def test_tls_off_loopback_is_served(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate to serve TLS with")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "cert.pem"],
        cwd=tmp_path, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    db = tmp_path / "store.sqlite"
    tls = ("--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"))
    with RunningServer(db, extra=tls) as server:
        record = discovery.read(db)
        assert record is not None
        assert record.address.tls
        assert record.url.startswith("https://")
        client = ServiceClient(record.address, server.token)
        assert client.request("GET", "/v1/agents").status == 200
        client.close()
