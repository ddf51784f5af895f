"""Bounds on the work one repository file may cause, so one hostile file never stops the rest.

A file over `MAX_FILE_BYTES` is not parsed or searched (it becomes a
`file:1` problem where discovery reads it); everything read from the
working tree must be a regular file inside the repository.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 2 * 1024 * 1024  # far above any real flow module, far below what exhausts memory or time
TOO_LARGE = f"this file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB, so flowship does not read it; split it up"
TOO_DEEP = "this file nests too deeply for flowship to read statically; simplify the deepest expression"
NOT_REGULAR = "this is not a regular file (a symlink, FIFO or device), so flowship does not read it"


class NotReadable(Exception):
    """A working-tree path that is not a regular file, or is too large; `message` says which."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file, never following a symlink nor opening a FIFO or device.

    O_NOFOLLOW and O_NONBLOCK close the gap between the lstat check and the
    open (a path swapped for a FIFO cannot block, a link cannot be followed).
    """
    try:
        info = os.lstat(path)
    except OSError:
        raise NotReadable("this file cannot be read") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotReadable(NOT_REGULAR)
    if info.st_size > MAX_FILE_BYTES:
        raise NotReadable(TOO_LARGE)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        raise NotReadable(NOT_REGULAR) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NotReadable(NOT_REGULAR)
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise NotReadable(TOO_LARGE)
    return data
