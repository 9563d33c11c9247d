"""The server killed (-9) or stopped (SIGTERM) while 100 clients append: every acknowledged
append is there afterwards, and clients retrying with their idempotency keys end up with
exactly one copy of each entry. Serving a SQLite file and a PostgreSQL database."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from serving import EventStream, RunningServer, transcript_path

from store_sql.service import discovery
from store_sql.service.remote import ServiceClient, ServiceUnreachableError

LONG = os.environ.get("STORE_SQL_LONG_TESTS") == "1"
CLIENTS = 100
AGENT = "main"


class Appender(threading.Thread):
    """One client: appends `c<n>-<i>` messages to its own session until the server goes
    away, recording what was acknowledged and what was in flight when it went."""

    def __init__(self, server: RunningServer, n: int, start: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = server.new_client()
        self.session = f"client-{n:03d}"
        self.n = n
        self.start_gate = start
        self.acked: list[str] = []
        self.unknown: list[str] = []
        self.stop = False

    def run(self) -> None:
        path = transcript_path(AGENT, self.session) + "/entries"
        self.start_gate.wait()
        i = 0
        while not self.stop:
            key = f"c{self.n}-{i}"
            body = {"entries": [message(key)]}
            try:
                answer = self.client.request("POST", path, body)
            except ServiceUnreachableError:
                self.unknown.append(key)
                return
            if answer.status == 200:
                self.acked.append(key)
            elif answer.status == 503:
                self.unknown.append(key)  # stopping: refused, but try again after the restart
                return
            else:
                raise AssertionError((answer.status, answer.body))
            i += 1


def message(key: str) -> dict[str, object]:
    return {"type": "message", "message": {"role": "user", "content": key, "idempotencyKey": key}}


def keys_in(server: RunningServer, session: str) -> Counter[str]:
    body = server.request("GET", f"/v1/agents/{AGENT}/transcripts/{session}.jsonl").body
    found: Counter[str] = Counter()
    for line in body.splitlines()[1:]:
        found[orjson.loads(line)["message"]["idempotencyKey"]] += 1
    return found


def start_clients(server: RunningServer) -> tuple[list[Appender], threading.Event]:
    for n in range(CLIENTS):
        answer = server.request("POST", transcript_path(AGENT, f"client-{n:03d}"), {"cwd": "/w"})
        assert answer.status in (201, 400), answer.body
    gate = threading.Event()
    clients = [Appender(server, n, gate) for n in range(CLIENTS)]
    for c in clients:
        c.start()
    return clients, gate


def verify_and_retry(server: RunningServer, clients: list[Appender]) -> tuple[int, int]:
    """Every acknowledged key is stored once; a retry of every attempted key leaves exactly
    one copy of each. Returns (acknowledged, retried)."""
    acked = retried = 0
    for c in clients:
        stored = keys_in(server, c.session)
        for key in c.acked:
            assert stored[key] == 1, (c.session, key, stored[key])
        assert all(n == 1 for n in stored.values()), c.session
        attempted = c.acked + c.unknown
        for key in attempted:
            answer = server.request(
                "POST", transcript_path(AGENT, c.session) + "/entries", {"entries": [message(key)]}
            )
            assert answer.status == 200, answer.body
            assert answer.json()[0]["existed"] is (key in stored)
        after = keys_in(server, c.session)
        assert set(after) >= set(attempted)
        assert all(n == 1 for n in after.values()), c.session
        acked += len(c.acked)
        retried += len(attempted)
    return acked, retried


def drain(events: EventStream) -> None:
    while True:
        events.next_event()


def serving(location: str | Path, tmp_path: Path) -> RunningServer:
    """A server of `location`: a SQLite file, or a PostgreSQL URL (its files in tmp_path)."""
    if isinstance(location, Path):
        return RunningServer(location)
    return RunningServer(tmp_path / "store.sqlite", url=location)


def run_kill_round(location: str | Path, tmp_path: Path, rng: random.Random) -> tuple[int, int]:
    server = serving(location, tmp_path).start()
    try:
        clients, gate = start_clients(server)
        gate.set()
        time.sleep(rng.uniform(0.3, 1.2))
        server.kill()
        for c in clients:
            c.join(60)
            assert not c.is_alive()
    finally:
        server.kill()
    with serving(location, tmp_path) as again:
        return verify_and_retry(again, clients)


def test_kill_9_loses_no_acknowledged_append(backend_location: str | Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("STORE_SQL_CRASH_SEED", random.randrange(2**32)))
    print(f"service crash seed {seed}")
    rng = random.Random(seed)
    rounds = 5 if LONG else 1
    totals = [run_kill_round(backend_location, tmp_path, rng) for _ in range(rounds)]
    print(f"kill -9 rounds: {rounds}; acknowledged, retried per round: {totals}")
    assert all(acked > 0 for acked, _ in totals)


def test_sigterm_drains_and_answers(backend_location: str | Path, tmp_path: Path) -> None:
    server = serving(backend_location, tmp_path).start()
    clients, gate = start_clients(server)
    events = EventStream(server, transcript_path(AGENT, "client-000") + "/events")
    gate.set()
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    for c in clients:
        c.join(60)
        assert not c.is_alive()
    assert server.proc.wait(60) == 0  # type: ignore[union-attr]
    assert not discovery.serve_file(server.db).exists()
    with pytest.raises(EOFError):
        drain(events)
    events.close()
    with serving(backend_location, tmp_path) as again:
        acked, _ = verify_and_retry(again, clients)
    assert acked > 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a unix")
def test_second_server_on_the_same_database_is_refused(tmp_path: Path) -> None:
    """SQLite only: a SQLite file has one writer process; several servers may serve one
    PostgreSQL database (the test below)."""
    db = tmp_path / "store.sqlite"
    with RunningServer(db) as first:
        second = RunningServer(db)
        with pytest.raises(RuntimeError, match="already served"):
            second.start(timeout=30)
        assert first.request("GET", "/v1/health", auth=False).status == 200
    assert ServiceClient.for_database(db) is None


def test_two_servers_serve_one_postgresql_database(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL only: two servers (as on two hosts) append to one transcript in turns and
    at once; it stays one chain holding each entry once."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        RunningServer(tmp_path / "a" / "store.sqlite", url=pg_url) as first,
        RunningServer(tmp_path / "b" / "store.sqlite", url=pg_url) as second,
    ):
        base = transcript_path(AGENT, "shared")
        assert first.request("POST", base, {"cwd": "/w"}).status == 201
        for n in range(10):
            for server in (first, second):
                key = f"{server is first}-{n}"
                answer = server.request("POST", base + "/entries", {"entries": [message(key)]})
                assert answer.status == 200, answer.body

        def burst(server: RunningServer, tag: str) -> None:
            client = server.new_client()
            for n in range(25):
                answer = client.request(
                    "POST", base + "/entries", {"entries": [message(f"{tag}-{n}")]}
                )
                assert answer.status == 200, answer.body

        threads = [
            threading.Thread(target=burst, args=(server, f"{tag}{i}"))
            for i in range(4)
            for server, tag in ((first, "a"), (second, "b"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        path = second.request("GET", base + "/path").json()["entries"]
        assert len(path) == 20 + 8 * 25
        assert len({e["id"] for e in path}) == len(path)
        assert [e["parentId"] for e in path[1:]] == [e["id"] for e in path[:-1]]
        counts = keys_in(first, "shared")
        assert len(counts) == 20 + 8 * 25
        assert set(counts.values()) == {1}
