"""README's curl session runs as written against a real `store-sql serve`.

SQLite only: README's session serves a file (`--db gateway.sqlite`), as written."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MARKER = "<!-- curl-session -->"


def readme_session() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split(MARKER, 1)[1].split("```sh\n", 1)[1]
    return block.split("```", 1)[0]


def json_documents(text: str, count: int) -> tuple[list[object], str]:
    """The first `count` JSON documents of `text` (whitespace between them) and the rest."""
    decoder = json.JSONDecoder()
    docs: list[object] = []
    at = 0
    for _ in range(count):
        while text[at].isspace():
            at += 1
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs, text[at:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_readme_curl_session(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the README's curl session cannot run")
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("STORE_SQL_DB", None)
    done = subprocess.run(
        ["bash", "-e", "-c", readme_session()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    docs, rest = json_documents(done.stdout, 5)
    health, entry, created, appended, recent = docs
    assert health["ok"] is True
    assert entry == {"sessionId": "abc", "updatedAt": 1770711804964}
    assert created["sessionId"] == "abc"
    assert appended[0]["existed"] is False
    assert recent["entries"][0]["id"] == appended[0]["id"]
    lines = rest.strip().splitlines()
    header, line = json.loads(lines[0]), json.loads(lines[1])
    assert header["type"] == "session"
    assert line["message"]["content"] == "hi"
    assert "event: entry" in rest
    assert f"data: {lines[1]}" in rest
    # stopped gracefully: the discovery file is gone, the data is there
    assert not (tmp_path / "gateway.sqlite.serve").exists()
    assert (tmp_path / "gateway.sqlite").exists()
