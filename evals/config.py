"""``evals.yaml``: named models and judges, and how to reach them.

Keys never live in this file: each endpoint names the environment variable that holds its key
(``api_key_env``), and the key is read from the environment only when a client is built.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evals.errors import ConfigError
from evals.secrets import safe_url, url_secrets
from evals.userfiles import load_yaml, validation_errors

DEFAULT_CONFIG = Path("evals.yaml")
OFFLINE = "offline"
"""Name (and provider) of the built-in offline reference judge."""

DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
KEY_ENV_PATTERN = re.compile(r"[A-Z_][A-Z0-9_]*")
"""What ``api_key_env`` must look like: the NAME of an environment variable."""


_CREDENTIAL_FIELD = re.compile(
    r"(api|access|auth|secret|bearer|refresh)?(key|token|secret|password|authorization)"
)


def _credential_field(value: Any, depth: int = 2) -> str | None:
    """The first key of ``value`` (or of a mapping in it, ``auth: {token: ...}``) that names a credential.

    Schemas (``guided_json``, ``response_format``) are not looked into: their fields may well be called
    ``password`` or ``key`` without holding one.
    """
    if not isinstance(value, dict) or depth == 0:
        return None
    for key, inner in value.items():
        name = re.sub(r"[-_ ]", "", str(key).lower())
        if _CREDENTIAL_FIELD.fullmatch(name):
            return str(key)
        if not any(word in name for word in ("schema", "json", "format", "grammar", "properties")):
            found = _credential_field(inner, depth - 1)
            if found is not None:
                return found
    return None


class Endpoint(BaseModel):
    """A model server reached through an official SDK."""

    # allow_inf_nan: YAML's .nan and .inf are floats; none of our numbers means anything as one.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    provider: Literal["openai", "anthropic", "offline"] = "openai"
    """``openai`` for OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp); ``anthropic``."""
    base_url: str | None = None
    """Server URL (``http://localhost:8000/v1``); None lets the SDK use OPENAI_BASE_URL / ANTHROPIC_BASE_URL."""
    model: str | None = None
    """Model name sent to the server."""
    api_key_env: str | None = None
    """Environment variable holding the key (default OPENAI_API_KEY or ANTHROPIC_API_KEY)."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1)
    seed: int | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Server-specific request fields passed through as they are (e.g. vLLM's ``top_k``)."""
    max_concurrency: int = Field(default=8, ge=1, le=1024)
    """Calls in flight at once to this endpoint (at most 1024)."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Per-call timeout."""
    max_retries: int = Field(default=4, ge=0, le=100)
    """Retries on 429, 5xx, connection errors and timeouts, with jittered exponential backoff (at most 100:
    more would keep a run on a dead server for days)."""
    reasoning: Literal["separate", "keep"] = "separate"
    """``separate``: ``<think>`` blocks are cut out of the answer before it is graded (and stored apart);
    ``keep``: the answer is graded as sent. The APIs' separate reasoning fields are stored, never graded."""
    fingerprint: str | None = None
    """The hash of the model file the server serves (``sha256:<hex>``), set for the bundled local server,
    whose port changes every run: it identifies the model (and a judge, in the judgment cache) instead of
    ``base_url``."""
    price_in_per_mtok: float | None = Field(default=None, ge=0)
    """Price of a million prompt tokens (an API), for the scorecard's cost."""
    price_out_per_mtok: float | None = Field(default=None, ge=0)
    """Price of a million completion tokens (an API)."""
    price_per_hour: float | None = Field(default=None, ge=0)
    """Price of an hour of the server (self-hosted), charged for the run's wall time."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        # The message never repeats the URL: it may hold a password.
        expected = "expected an http:// or https:// URL with a host, e.g. http://localhost:8000/v1"
        if url is None:
            return None
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018  (raises ValueError for a port that is not a number in range)
        except ValueError:
            raise ValueError(f"not a valid URL: {expected}") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"scheme {parts.scheme or '(none)'!r} is not http or https: {expected}")
        if not parts.hostname:
            raise ValueError(f"no host: {expected}")
        if parts.query or parts.fragment or "?" in url or "#" in url:
            # The SDKs append /chat/completions to base_url, after a query: it never works, and a query is
            # where a key would hide (the snapshot, messages and reports keep the URL).
            raise ValueError(
                "has a query or fragment ('?...' or '#...'), which the SDKs cannot use; end the URL at its "
                "path and put a key in the variable named by api_key_env"
            )
        if any(ch.isspace() or not ch.isprintable() for ch in url):
            raise ValueError(f"contains spaces or control characters: {expected}")
        return url

    @field_validator("extra_body")
    @classmethod
    def _json_body(cls, body: dict[str, Any]) -> dict[str, Any]:
        # Sent as JSON with every request and kept in the run's snapshot: a YAML .nan, .inf or date would
        # only fail once the run exists.
        try:
            json.dumps(body, allow_nan=False)
        except ValueError:
            raise ValueError("holds .nan or .inf: every number must be finite") from None
        except TypeError as exc:
            raise ValueError(f"is not plain JSON ({exc}); quote dates and other special values") from None
        named = _credential_field(body)
        if named is not None:  # the value is never repeated: it is most likely the key itself
            raise ValueError(
                f"field {named!r} holds a credential, which would be kept with every run and scorecard; "
                "put the key in an environment variable and name it with api_key_env"
            )
        return body

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, name: str | None) -> str | None:
        # Never echo the value: when it is not a name, it is most likely the key itself.
        if name is not None and not KEY_ENV_PATTERN.fullmatch(name):
            raise ValueError(
                "expected the NAME of an environment variable (capitals, digits and _, e.g. "
                "OPENAI_API_KEY), not a key; put the key in that variable, never in this file"
            )
        return name

    @property
    def key_env(self) -> str | None:
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.provider)

    def api_key(self) -> str | None:
        """The key from the environment, or None when the variable is unset or empty."""
        name = self.key_env
        return (os.environ.get(name) or None) if name else None

    def secrets(self) -> list[str]:
        """What must never be shown or kept: the key's value and any password inside ``base_url``."""
        key = self.api_key()
        return ([key] if key else []) + url_secrets(self.base_url)

    def snapshot(self) -> dict[str, Any]:
        """The configuration as stored with a run: the key variable's name, never its value.

        Credentials written into ``base_url`` (``http://user:pass@host``) are left out.
        """
        data = self.model_dump(mode="json", exclude_none=True)
        if self.key_env:
            data["api_key_env"] = self.key_env
        if self.base_url is not None:
            data["base_url"] = safe_url(self.base_url)
        return data


class JudgeEndpoint(Endpoint):
    """A judge: an endpoint plus the rubric it grades with."""

    rubric: str = "correctness"
    """Name of a rubric: ``<judges_dir>/<rubric>.yaml``, ``judges/<rubric>.yaml`` or a shipped one."""
    structured: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    """``json_schema``: tool use (Anthropic) or ``response_format`` json_schema (OpenAI); ``json_object``: a
    JSON object with the schema in the prompt; ``text``: a plain text verdict ending ``SCORE: N``; ``auto``:
    json_schema, falling back once per run to json_object and then text when the server refuses it."""
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float | None = Field(default=0.0, ge=0, le=2)


class ScorecardSettings(BaseModel):
    """How the scorecard judges areas and drift (``scorecard:`` in evals.yaml); the defaults are documented."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    pass_score: int = Field(default=4, ge=1, le=5)
    """An answer passes when its score is at least this."""
    weak_mean: float = Field(default=3.5, ge=1, le=5)
    """An area is weak when its mean score is below this ..."""
    weak_pass_rate: float = Field(default=0.6, ge=0, le=1)
    """... or its pass rate is below this."""
    strong_mean: float = Field(default=4.2, ge=1, le=5)
    """An area is strong when its mean is at least this and its pass rate at least ``strong_pass_rate``."""
    strong_pass_rate: float = Field(default=0.8, ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of drift tests, after correction across areas."""
    correction: Literal["holm", "bh"] = "holm"
    """Multiple-comparison correction across areas: Holm (family-wise) or Benjamini–Hochberg (FDR)."""
    min_effect: float = Field(default=0.5, ge=0)
    """A drop must be at least this many points (and significant) for an area to be ``regressed``."""
    history: int = Field(default=30, ge=2)
    """Runs of the suite shown in the history charts."""


class CanarySettings(BaseModel):
    """The judge's drift canary (``canary:`` in evals.yaml; ``docs/canary.md``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    """Re-judge the anchor set at the end of every run (a few judge calls: ``size`` of them)."""
    size: int = Field(default=20, ge=2, le=500)
    """Answered items in a new anchor set, drawn round-robin across areas."""
    min_shift: float = Field(default=0.25, ge=0)
    """The canary moved when its shift's 95 % interval excludes 0 and the shift is at least this (points)."""
    labels: str | None = None
    """A JSONL file of ``{question, answer, human_score}`` rows: anchors with the same question and answer
    keep the human score beside the judge's (relative to the config's folder)."""


class Config(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    models: dict[str, Endpoint] = Field(default_factory=dict)
    judges: dict[str, JudgeEndpoint] = Field(default_factory=dict)
    suites_dir: str = "suites"
    judges_dir: str = "judges"
    """Rubrics looked up first; then ``judges/`` beside the config, then the shipped ones (``evals rubric list``)."""
    default_suite: str | None = None
    """Suite ``evals run`` uses when ``--suite`` is not given (relative to the config's folder)."""
    reports_dir: str = "reports"
    store: str | None = None
    """Where runs are stored: ``postgresql://user@host/db`` for one store shared by several machines (the
    ``postgres`` extra), or a SQLite file; default ``<reports_dir>/evals.db``. ``EVALS_STORE`` overrides it.
    Never put the password here: libpq reads ``PGPASSWORD`` or ``~/.pgpass``."""
    store_password_env: str | None = None
    """Name of the environment variable holding the store's password, when it is not ``PGPASSWORD``."""
    default_model: str | None = None
    """Model used when ``--model`` is not given (default: the first one)."""
    scorecard: ScorecardSettings = Field(default_factory=ScorecardSettings)
    """Thresholds of weak areas and drift."""
    default_judge: str | None = None
    """Judge used when ``--judge`` is not given (default: the first judge whose key is set, else offline)."""
    canary: CanarySettings = Field(default_factory=CanarySettings)
    """The judge's drift canary: anchor set size, the shift that counts as moved, human labels."""
    root: Path = Field(default=Path("."), exclude=True)
    """Folder of the config file; relative folders are resolved against it."""

    @field_validator("store_password_env")
    @classmethod
    def _password_variable(cls, name: str | None) -> str | None:
        # Never echo the value: when it is not a name, it is most likely the password itself.
        if name is not None and not KEY_ENV_PATTERN.fullmatch(name):
            raise ValueError(
                "expected the NAME of an environment variable (e.g. EVALS_DB_PASSWORD), not a password"
            )
        return name

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
    # Through the one loader of user files: a folder or FIFO, a key given twice, nested anchors or too
    # deep nesting are one-line errors with the line.
    data = load_yaml(path, error=ConfigError)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping with 'models' and 'judges'")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = validation_errors(path, data, exc)
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from None
    config.root = path.resolve().parent
    return config
