"""Files and directories the store creates are private: conversations live in them.

Files are 0600 and directories 0700 whatever the umask, from the moment they exist: a mode
set after the fact leaves a window in which another user may open the file.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dirs(folder: Path) -> None:
    """Create `folder` and each missing parent with mode 0700 (existing ones are left as
    they are). `Path.mkdir(parents=True)` would give the parents the umask's mode."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by another process: its mode is its own
        os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask


def create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600; it must not exist."""
    fd = os.open(
        path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
    )
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
