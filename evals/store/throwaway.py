"""A throwaway PostgreSQL server from Debian's ``postgresql`` package, for tests and benchmarks.

Started with ``initdb``/``pg_ctl`` in a temporary folder, listening on a Unix socket only (no TCP), with
``trust`` authentication on that socket, and removed when the block ends. ``initdb`` refuses to run as root,
so as root the server runs as Debian's ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "PostgreSQL is not installed here (apt-get install postgresql)"


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server."""

    socket_dir: Path
    port: int
    """Only names the socket file (``.s.PGSQL.<port>``)."""

    def url(self, database: str = "postgres") -> str:
        """The store URL of one of its databases (user ``postgres``, no password: trust on the socket)."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """Start a server, yield it, always stop it and remove its files.

    ``FileNotFoundError`` when the binaries are missing; ``RuntimeError`` (with the server's log) when it
    cannot start.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise FileNotFoundError(INSTALL_HINT)
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="evals-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        for path in (base, sockets):
            shutil.chown(path, "postgres", "postgres")
    port = _free_port()
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [*pg_ctl, "-w", "-l", str(base / "server.log"), "start", "-o",
             f"-k {sockets} -p {port} -c listen_addresses='' -c fsync=off -c max_connections=200"],
            check=True, capture_output=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr.decode()} {log}") from None
    try:
        yield PostgresServer(sockets, port)
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
