"""`store-sql` as a real subprocess: as a user's shell runs it (`store_sql`), or as
`python -m store_sql` on this checkout's code (`python_m`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def store_sql(
    *args: str | Path, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """The installed script (else `python -m store_sql`), without the caller's
    `$STORE_SQL_DB`; output as bytes."""
    exe = shutil.which("store-sql", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "store_sql"]
    env = {k: v for k, v in os.environ.items() if k != "STORE_SQL_DB"}
    return subprocess.run(
        [*command, *map(str, args)], cwd=cwd, capture_output=True, timeout=timeout, env=env,
        check=False,
    )  # fmt: skip


def python_m(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m store_sql` with this checkout first on PYTHONPATH and `env` added to the
    caller's environment; output as text."""
    return subprocess.run(
        [sys.executable, "-m", "store_sql", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
