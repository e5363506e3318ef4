"""Files the tool writes whole: written beside their target and renamed over it, or not at all.

A reader never sees half a scorecard, and a failed write (a full disk, a read-only reports folder, a
size limit) leaves neither a half-written file nor a ``.tmp`` behind: the error propagates, the
temporary file is removed first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write; renamed to ``path`` if the block succeeds.

    A symlink is followed (its target is replaced, the link kept), and a path that is no regular file (a
    FIFO, a terminal, ``/dev/stdout``) is written in place: renaming over it would replace it with a file.
    """
    try:
        mode: int | None = os.stat(path).st_mode  # follows links
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        yield path
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    # A unique name, so two processes writing the same report do not clobber each other's temporary file;
    # mode 0o666 under the umask, as open() would give (mkstemp's 0o600 would hide reports from a web server).
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        try:
            yield tmp
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        # Name the file the user asked for (a write error names none, the temporary name means nothing).
        raise OSError(exc.errno, f"cannot write: {exc.strerror or exc}", str(path)) from exc


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` in one step; return ``path``."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path
