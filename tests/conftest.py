"""Shared fixtures: an isolated environment and working folder, fast retries, and fake API servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from evals.fakes import FakeAnthropic, FakeOpenAI
from evals.providers import retry

# Variables the SDKs read on their own (keys, base URLs, org, custom headers, credential profiles):
# a developer's shell must not leak into a test, nor a test reach a real API.
_SDK_PREFIXES = ("OPENAI_", "ANTHROPIC_")


@pytest.fixture(autouse=True)
def clean_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in its own empty folder, with HOME there too and no SDK variables set."""
    for name in list(os.environ):
        if name.startswith(_SDK_PREFIXES):
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
