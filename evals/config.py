"""``evals.yaml``: named models and judges, and how to reach them.

Keys never live in this file: each endpoint names the environment variable that holds its key
(``api_key_env``), and the key is read from the environment only when a client is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals.errors import ConfigError

DEFAULT_CONFIG = Path("evals.yaml")
OFFLINE = "offline"
"""Name (and provider) of the built-in offline reference judge."""

DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class Endpoint(BaseModel):
    """A model server reached through an official SDK."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["openai", "anthropic", "offline"] = "openai"
    """``openai`` for OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp); ``anthropic``."""
    base_url: str | None = None
    """Server URL (``http://localhost:8000/v1``); None lets the SDK use OPENAI_BASE_URL / ANTHROPIC_BASE_URL."""
    model: str | None = None
    """Model name sent to the server."""
    api_key_env: str | None = None
    """Environment variable holding the key (default OPENAI_API_KEY or ANTHROPIC_API_KEY)."""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = Field(default=512, ge=1)
    seed: int | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Server-specific request fields passed through as they are (e.g. vLLM's ``top_k``)."""
    max_concurrency: int = Field(default=8, ge=1, le=1024)
    """Calls in flight at once to this endpoint (at most 1024)."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Per-call timeout."""
    max_retries: int = Field(default=4, ge=0)
    """Retries on 429, 5xx, connection errors and timeouts, with jittered exponential backoff."""
    price_in_per_mtok: float | None = None
    """Price of a million prompt tokens (an API), for the scorecard's cost."""
    price_out_per_mtok: float | None = None
    """Price of a million completion tokens (an API)."""
    price_per_hour: float | None = None
    """Price of an hour of the server (self-hosted), charged for the run's wall time."""

    @property
    def key_env(self) -> str | None:
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.provider)

    def api_key(self) -> str | None:
        """The key from the environment, or None when the variable is unset or empty."""
        name = self.key_env
        return (os.environ.get(name) or None) if name else None

    def snapshot(self) -> dict[str, Any]:
        """The configuration as stored with a run: the key variable's name, never its value."""
        data = self.model_dump(mode="json", exclude_none=True)
        if self.key_env:
            data["api_key_env"] = self.key_env
        return data


class JudgeEndpoint(Endpoint):
    """A judge: an endpoint plus the rubric it grades with."""

    rubric: str = "correctness"
    """Name of a rubric file in the judges folder (``judges/<rubric>.yaml``)."""
    structured: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    """``json_schema``: tool use (Anthropic) or ``response_format`` json_schema (OpenAI); ``json_object``: a
    JSON object with the schema in the prompt; ``text``: a plain text verdict ending ``SCORE: N``; ``auto``:
    json_schema, falling back once per run to json_object and then text when the server refuses it."""
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float | None = 0.0


class ScorecardSettings(BaseModel):
    """How the scorecard judges areas and drift (``scorecard:`` in evals.yaml); the defaults are documented."""

    model_config = ConfigDict(extra="forbid")

    pass_score: int = Field(default=4, ge=1, le=5)
    """An answer passes when its score is at least this."""
    weak_mean: float = 3.5
    """An area is weak when its mean score is below this ..."""
    weak_pass_rate: float = 0.6
    """... or its pass rate is below this."""
    strong_mean: float = 4.2
    """An area is strong when its mean is at least this and its pass rate at least ``strong_pass_rate``."""
    strong_pass_rate: float = 0.8
    alpha: float = 0.05
    """Significance level of drift tests, after correction across areas."""
    correction: Literal["holm", "bh"] = "holm"
    """Multiple-comparison correction across areas: Holm (family-wise) or Benjamini–Hochberg (FDR)."""
    min_effect: float = 0.5
    """A drop must be at least this many points (and significant) for an area to be ``regressed``."""
    history: int = Field(default=30, ge=2)
    """Runs of the suite shown in the history charts."""


class Config(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, Endpoint] = Field(default_factory=dict)
    judges: dict[str, JudgeEndpoint] = Field(default_factory=dict)
    suites_dir: str = "suites"
    judges_dir: str = "judges"
    reports_dir: str = "reports"
    default_model: str | None = None
    """Model used when ``--model`` is not given (default: the first one)."""
    scorecard: ScorecardSettings = Field(default_factory=ScorecardSettings)
    """Thresholds of weak areas and drift."""
    default_judge: str | None = None
    """Judge used when ``--judge`` is not given (default: the first judge whose key is set, else offline)."""
    root: Path = Field(default=Path("."), exclude=True)
    """Folder of the config file; relative folders are resolved against it."""

    def model(self, name: str | None) -> tuple[str, Endpoint]:
        """The named model (or the default one)."""
        name = name or self.default_model or next(iter(self.models), None)
        if name is None:
            raise ConfigError("no models configured: add one under 'models:' in evals.yaml")
        if name not in self.models:
            raise ConfigError(f"unknown model {name!r}; configured: {', '.join(sorted(self.models))}")
        return name, self.models[name]

    def judge(self, name: str | None) -> tuple[str, JudgeEndpoint]:
        """The named judge, or the default: the first configured judge whose key is set, else offline."""
        if name is None:
            name = self.default_judge
        if name is None:
            name = next((n for n, j in self.judges.items() if j.provider != OFFLINE and j.api_key()), OFFLINE)
        if name == OFFLINE and OFFLINE not in self.judges:
            return OFFLINE, JudgeEndpoint(provider="offline", model="offline-reference")
        if name not in self.judges:
            known = sorted({*self.judges, OFFLINE})
            raise ConfigError(f"unknown judge {name!r}; configured: {', '.join(known)}")
        return name, self.judges[name]

    def path(self, folder: str) -> Path:
        return (self.root / folder) if not Path(folder).is_absolute() else Path(folder)


def default_config() -> Config:
    """What applies with no evals.yaml: a local OpenAI-compatible server on port 8000 and the offline judge."""
    return Config(models={"local": Endpoint(base_url="http://127.0.0.1:8000/v1", model="local")})


def load_config(path: Path | None = None) -> Config:
    """Read ``path`` (default ``./evals.yaml``; built-in defaults when that file does not exist)."""
    explicit = path is not None
    path = path or DEFAULT_CONFIG
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: config file not found")
        return default_config()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'models' and 'judges'")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from None
    config.root = path.resolve().parent
    return config
