"""The run store: SQLite at ``<reports>/evals.db`` by default, or one PostgreSQL database for a team.

``Store`` is the one implementation of the ``RunStore`` protocol over both backends (``sqlite.py``,
``postgres.py``), each evolved by the numbered steps of ``migrations.py`` (each written once, in
``schema.py``'s vocabulary, and rendered for both dialects). ``open_store`` picks the store a config
names; ``transfer.py`` copies and imports runs, all or nothing (what may enter is ``checks.py``'s, an
export is read as a stream by ``exported.py``), ``export.py`` writes the history as Parquet; ``human.py``
keeps people's scores of a run's answers and the random draws they came from; ``batches.py`` keeps the
batches a run submitted to a vendor's batch API.
"""

from __future__ import annotations

from pathlib import Path

from evals.config import Config
from evals.secrets import is_postgres
from evals.store.core import STORE_ENV, Store, store_url
from evals.store.migrations import SQLITE_MIGRATIONS
from evals.store.protocol import RunStore
from evals.store.sqlite import DB_NAME

MIGRATIONS = SQLITE_MIGRATIONS
"""The SQLite steps (``migrations.POSTGRES_MIGRATIONS`` holds PostgreSQL's, under the same names)."""

__all__ = ["DB_NAME", "MIGRATIONS", "STORE_ENV", "RunStore", "Store", "open_store", "store_url"]


def open_store(config: Config, reports_dir: Path, readonly: bool = False, check_key: bool = True) -> Store:
    """The store a config names (``EVALS_STORE`` first, then ``store:``), else ``<reports_dir>/evals.db``.

    With ``EVALS_STORE_KEY`` set, the key is checked against the store's at once (``Store.check_key``), so a
    wrong key stops a command before it writes anything; ``check_key=False`` leaves that to the first read
    or write of text (``evals store rekey`` checks in its own way)."""
    url = store_url(config.store)
    if url is not None and not is_postgres(url):
        url = str(config.path(url))  # a SQLite file named in the config is relative to the config's folder
    store = Store(reports_dir, readonly=readonly, url=url, password_env=config.store_password_env)
    if check_key:
        try:
            store.check_key()
        except BaseException:
            store.close()
            raise
    return store
