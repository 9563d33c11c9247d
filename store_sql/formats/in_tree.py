"""Files and folders inside a directory tree, reached through directory file descriptors.

A path that is checked and then used can change in between: a folder swapped for a symlink
sends the use anywhere. So a tree's root is opened once (it may itself be a symlink: the
caller named it) and every name below it is opened relative to its parent folder's
descriptor with ``O_NOFOLLOW``: a symlink met on the way fails the open instead of being
followed. A file opened for reading is checked (``fstat``) to be a regular file. Writing
creates folders with ``mkdir(dir_fd=)``, writes a temp file and renames it through the
folder's descriptor, so nothing lands outside the root whatever is swapped meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "TreeFile",
    "make_dirs",
    "open_child",
    "open_child_dir",
    "open_dir",
    "open_file",
    "write_file",
]

FILE_MODE = 0o600
DIR_MODE = 0o700

_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_FLAGS = _ROOT_FLAGS | os.O_NOFOLLOW
# O_NONBLOCK: a FIFO swapped in for a file must not block the open; fstat refuses it next.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class TreeFile:
    """A regular file inside a tree: opened from `root` through `parts`, never following a
    symlink below `root`."""

    root: Path
    parts: tuple[str, ...]
    path: Path
    """The file as found (a symlink's own path for a symlink to a file inside the tree):
    for reports only, never opened."""

    def open(self) -> BinaryIO:
        return open_file(self.root, self.parts, shown=self.path)


def _not_followed(exc: OSError, shown: Path | str) -> OSError:
    """ELOOP/ENOTDIR from an ``O_NOFOLLOW`` open: a symlink (or a non-folder) is in the way."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return OSError(
            exc.errno, "a symlink or non-folder is in the way (not followed)", str(shown)
        )
    return exc


def open_dir(root: Path, parts: Sequence[str], *, shown: Path | str | None = None) -> int:
    """A descriptor of the folder ``root/parts...``: `root` may be a symlink, no part may."""
    fd = os.open(root, _ROOT_FLAGS)
    try:
        for part in parts:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        raise _not_followed(exc, shown or root.joinpath(*parts)) from None
    return fd


def open_file(root: Path, parts: Sequence[str], *, shown: Path | str | None = None) -> BinaryIO:
    """The regular file ``root/parts...`` opened for reading, no symlink below `root` followed.

    Raises OSError when a part is a symlink or the file is not a regular file."""
    where = shown or root.joinpath(*parts)
    folder = open_dir(root, parts[:-1], shown=where)
    try:
        return open_child(folder, parts[-1], shown=where)
    finally:
        os.close(folder)


def open_child(folder_fd: int, name: str, *, shown: Path | str) -> BinaryIO:
    """The regular file `name` of the open folder `folder_fd`, opened for reading without
    following a symlink. Raises OSError when it is a symlink or not a regular file."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=folder_fd)
    except OSError as exc:
        raise _not_followed(exc, shown) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(shown))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_child_dir(folder_fd: int, name: str, *, shown: Path | str) -> int:
    """A descriptor of the folder `name` of the open folder `folder_fd` (not a symlink)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=folder_fd)
    except OSError as exc:
        raise _not_followed(exc, shown) from None


def make_dirs(root_fd: int, parts: Sequence[str]) -> int:
    """A descriptor of the folder `parts` below the open folder `root_fd`, creating missing
    folders with mode 0700; a symlink in the way fails with OSError."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            created = False
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                    created = True
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            if created:
                os.fchmod(fd, DIR_MODE)  # mkdir's mode is masked by the umask
    except OSError as exc:
        os.close(fd)
        raise _not_followed(exc, "/".join(parts)) from None
    return fd


def write_file(
    folder_fd: int, name: str, data: bytes | Iterable[bytes], *, durable: bool = False
) -> int:
    """Write `data` to a temp file in the open folder and rename it to `name` there (mode
    0600, created exclusively, never through a symlink); returns the bytes written.

    The temp name has a fixed length, so any name the file system can hold can be written."""
    tmp = f".store-sql-{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, _TEMP_FLAGS, FILE_MODE, dir_fd=folder_fd)
    size = 0
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # the mode given to open() is masked by the umask
            for chunk in [data] if isinstance(data, bytes) else data:
                size += _write_all(fd, chunk)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder_fd)
        raise
    return size


def _write_all(fd: int, chunk: bytes) -> int:
    """`os.write` until all of `chunk` is written: write(2) may write less than asked."""
    written = os.write(fd, chunk)
    if written < len(chunk):
        view = memoryview(chunk)
        while written < len(chunk):
            written += os.write(fd, view[written:])
    return written
