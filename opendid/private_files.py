"""Files that hold secrets or sessions: 0600 from the first byte on, in 0700 folders.

Modes are set explicitly, whatever the process's umask: SQLite databases are created here empty
before SQLite opens them, because SQLite gives its -wal, -shm and -journal files the main file's
mode.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) with mode 0700; an existing folder is left as is."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)


def tighten_dir(path: Path) -> None:
    """Make `path` a 0700 folder: created so, or tightened (with a warning) if group or others
    could enter it. The instance folder holds keys and sessions and nothing meant for others."""
    private_dir(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            os.chmod(path, DIR_MODE)
        except OSError as exc:
            log.warning("%s is mode %04o and cannot be tightened to 0700 (%s): others may read "
                        "its keys and sessions", path, mode, exc.strerror)
            return
        log.warning("%s was mode %04o; tightened to 0700 (it holds keys and sessions)",
                    path, mode)


def open_private(path: Path) -> int:
    """Open `path` for writing without truncating it, creating it 0600; an existing file that
    group or others could read is tightened to 0600. The caller closes the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def ensure_private_file(path: Path) -> None:
    """`path` exists and is 0600 (an empty file is a valid new SQLite database)."""
    os.close(open_private(path))


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, mode 0600 from the first byte on."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # a stale temp file of the same name keeps its old mode
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
