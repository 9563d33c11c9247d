"""The real pi (npm `@mariozechner/pi-coding-agent`, pinned in tools/oracles/pi) as an oracle.

`install()` runs tools/oracles/pi, which installs the package once into a shared cache;
`PiOracle` starts one Node process on tools/oracles/pi_driver.mjs and sends it requests, one
JSON line each way, so a whole test run or benchmark pays for Node's start-up once. The
driver's docstring lists the requests and their answers; transcripts travel as base64 of
their bytes.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INSTALLER = HERE / "pi"
DRIVER = HERE / "pi_driver.mjs"


class OracleUnavailable(Exception):
    """pi cannot run here (no Node, no npm, or the registry cannot be reached): the reason.
    Any other failure to install it is an error, not a reason to skip."""


def install() -> Path:
    """The install directory, installing the package first if needed."""
    if shutil.which("node") is None:
        raise OracleUnavailable("node is not installed: the pi oracle cannot run")
    done = subprocess.run(
        ["bash", str(INSTALLER)], capture_output=True, text=True, timeout=900, check=False
    )
    reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    if done.returncode == 3:  # npm or the registry cannot be reached (tools/oracles/pi)
        raise OracleUnavailable(f"the pi oracle could not be installed: {reason}")
    if done.returncode != 0:
        raise RuntimeError(f"tools/oracles/pi failed ({done.returncode}): {reason}")
    return Path(done.stdout.strip())


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(text: str) -> bytes:
    return base64.b64decode(text)


class PiOracle:
    """One Node process running pi's session code; `close()` ends it."""

    def __init__(self, install_dir: Path) -> None:
        self._process = subprocess.Popen(
            ["node", str(DRIVER), str(install_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    @classmethod
    def start(cls) -> PiOracle:
        return cls(install())

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps(payload) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the pi driver exited ({process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"pi failed: {answer['error']}")
        return answer

    def read(self, data: bytes, leaf_id: str | None = None) -> dict[str, Any]:
        """pi's view of a transcript file (see pi_driver.mjs, op `read`)."""
        payload: dict[str, Any] = {"op": "read", "data": encode(data)}
        if leaf_id is not None:
            payload["leafId"] = leaf_id
        answer = self.request(payload)
        if answer["migrated"] is not None:
            answer["migrated"] = decode(answer["migrated"])
        return answer

    def append(self, data: bytes, calls: list[list[Any]]) -> dict[str, Any]:
        """The lines pi's SessionManager appends for `calls` ([method, *args]) to a file."""
        answer = self.request({"op": "append", "data": encode(data), "calls": calls})
        answer["lines"] = [decode(line) for line in answer["lines"]]
        return answer

    def time_context(self, path: Path, rounds: int) -> float:
        """Milliseconds pi takes, at best of `rounds`, to load a file and build its context."""
        answer = self.request({"op": "time_context", "path": str(path), "rounds": rounds})
        return float(answer["ms"])

    def close(self) -> None:
        process = self._process
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
