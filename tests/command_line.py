"""`store-sql` run as a user's shell runs it: the installed script (else `python -m
store_sql`) as a real subprocess, without the caller's `$STORE_SQL_DB`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def store_sql(
    *args: str | Path, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("store-sql", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "store_sql"]
    env = {k: v for k, v in os.environ.items() if k != "STORE_SQL_DB"}
    return subprocess.run(
        [*command, *map(str, args)], cwd=cwd, capture_output=True, timeout=timeout, env=env,
        check=False,
    )  # fmt: skip
