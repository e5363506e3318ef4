"""Shared fixtures: an isolated environment and working folder, fast retries, and fake API servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from evals.fakes import FakeAnthropic, FakeOpenAI
from evals.outbound.providers import retry
from evals.store import Store
from evals.store.throwaway import PostgresServer, throwaway_postgres

# Variables the SDKs read on their own (keys, base URLs, org, custom headers, credential profiles):
# a developer's shell must not leak into a test, nor a test reach a real API.
_SDK_PREFIXES = ("OPENAI_", "ANTHROPIC_")
# Nor may a developer's store settings, store key or libpq variables reach a test's store.
_STORE_VARIABLES = (
    "EVALS_STORE",
    "EVALS_STORE_KEY",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSERVICE",
)


@pytest.fixture(autouse=True)
def clean_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in its own empty folder, with HOME there too and no SDK variables set."""
    for name in list(os.environ):
        if name.startswith(_SDK_PREFIXES) or name in _STORE_VARIABLES:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff between retries in milliseconds rather than seconds; a server's Retry-After still applies."""
    monkeypatch.setattr(retry, "BACKOFF_INITIAL_S", 0.01)
    monkeypatch.setattr(retry, "BACKOFF_MAX_S", 0.05)
    monkeypatch.setattr(retry, "BACKOFF_JITTER_S", 0.01)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started fake OpenAI server (``.url`` is the base_url); stopped after the test."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A started fake Anthropic server (``.url`` is the base_url); stopped after the test."""
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL started with ``initdb``/``pg_ctl`` in a temporary folder, stopped at the end.

    Skipped when the binaries are missing (``apt-get install postgresql``), except in CI (``CI`` set),
    which installs them: there a missing server fails the tests instead of hiding them.
    """
    try:
        with throwaway_postgres() as server:
            yield server
    except FileNotFoundError as exc:
        reason = f"{exc}; its store tests need it"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the throwaway server, dropped after the test."""
    import psycopg  # only the PostgreSQL tests need it

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url(name)
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs twice: on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "evals.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def open_store(tmp_path: Path, store_url: str) -> Callable[..., Store]:
    """Opens the parametrised store (reports folder ``tmp_path``) with ``Store``'s keyword arguments."""
    return lambda **kwargs: Store(tmp_path, url=store_url, **kwargs)
