"""The endpoints of ``evals.yaml``: a model or a judge, how to reach it, and what it may be sent.

Keys never live in the config: each endpoint names the environment variable that holds its key
(``api_key_env``), and the key is read from the environment only when a client is built.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from evals.errors import ConfigError
from evals.perimeter import frontier_vendor, is_external
from evals.records import MAX_ANSWER_CHARS
from evals.secrets import safe_url, url_secrets

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
    max_answer_chars: int | None = Field(default=None, ge=1)
    """A model's answers are cut to this many characters (None: ``records.MAX_ANSWER_CHARS``, 20,000) before
    they are stored or graded, and marked cut off (the judge is told). Not a judge's setting."""
    seed: int | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Server-specific request fields passed through as they are (e.g. vLLM's ``top_k``)."""
    max_concurrency: int = Field(default=8, ge=1, le=1024)
    """Calls in flight at once to this endpoint (at most 1024); held across every ``evals worker`` of a
    PostgreSQL store together."""
    requests_per_minute: float | None = Field(default=None, gt=0)
    """Calls started per minute at most (a provider's rate limit); None: no limit. Held per process, and
    across every ``evals worker`` of a PostgreSQL store together."""
    tokens_per_minute: float | None = Field(default=None, gt=0)
    """Tokens (prompt estimated from its length, completion at ``max_tokens``, corrected by the usage the
    server reports) per minute at most; None: no limit. Held like ``requests_per_minute``."""
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
    open_weights: bool = False
    """The model's weights are open (a Qwen or DeepSeek teacher on vLLM): its text may be a training target
    in ``evals export weak``. Frontier APIs' terms forbid training other models on their outputs."""
    price_per_hour: float | None = Field(default=None, ge=0)
    """Price of an hour of the server (self-hosted), charged for the time it was busy with the run."""
    external: bool | None = None
    """Whether calls leave the perimeter (redaction, restricted items): None decides by the host (loopback
    or ``internal_hosts``: internal; anything else, or no base_url: external)."""

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

    @model_validator(mode="after")
    def _open_weights_allowed(self) -> Endpoint:
        # The training-terms guard: what an open_weights endpoint writes may become a training target.
        rule = frontier_vendor(self.provider, self.base_url, self.model) if self.open_weights else None
        if rule is not None:
            reason = (
                f"refused by the training-terms guard: {rule}, and frontier vendors' terms forbid training "
                "other models on their outputs; remove open_weights: true (it belongs only on an endpoint "
                "serving an open-weights model at your own base_url)"
            )
            error = PydanticCustomError("training_terms", "{reason}", {"reason": reason})
            details = InitErrorDetails(type=error, loc=("open_weights",), input=True)
            raise ValidationError.from_exception_data(type(self).__name__, [details])
        return self

    def is_external(self) -> bool:
        """Whether calls to this endpoint leave the perimeter (``evals.perimeter.is_external``)."""
        return is_external(self.provider, self.base_url, self.external)

    @property
    def answer_cap(self) -> int:
        """The most characters of an answer kept (``max_answer_chars``, else the default)."""
        return self.max_answer_chars or MAX_ANSWER_CHARS

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


class PanelSettings(BaseModel):
    """A judge entry that is a panel of other configured judges (``panel:``), each grading every answer.

    ``panel: [claude, gpt]`` is short for ``panel: {members: [claude, gpt]}``. The members are judges of the
    same ``judges:`` mapping (not panels), at least two, each once, all grading with the same rubric.
    """

    model_config = ConfigDict(extra="forbid")

    members: list[str]
    """Names of the judges on the panel, in the order their verdicts are shown."""
    aggregate: Literal["mean", "median"] = "mean"
    """How an answer's score is made from the members' scores (each member's repeats averaged first)."""
    _endpoints: dict[str, JudgeEndpoint] = PrivateAttr(default_factory=dict)

    def endpoints(self) -> dict[str, JudgeEndpoint]:
        """The members' configurations, by name (set by ``Config.judge``)."""
        if not self._endpoints:
            raise ConfigError("a panel's members are only known through Config.judge(name)")
        return dict(self._endpoints)


class JudgeEndpoint(Endpoint):
    """A judge: an endpoint plus the rubric it grades with (or a panel of judges: ``panel``)."""

    rubric: str = "correctness"
    """Name of a rubric: ``<judges_dir>/<rubric>.yaml``, ``judges/<rubric>.yaml`` or a shipped one."""
    structured: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    """``json_schema``: tool use (Anthropic) or ``response_format`` json_schema (OpenAI); ``json_object``: a
    JSON object with the schema in the prompt; ``text``: a plain text verdict ending ``SCORE: N``; ``auto``:
    json_schema, falling back once per run to json_object and then text when the server refuses it."""
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float | None = Field(default=0.0, ge=0, le=2)
    panel: PanelSettings | None = None
    """Several judges grading every answer, their scores aggregated (``evals.judge.panel``); an entry with
    ``panel`` holds nothing else."""
    restricted_judge: str | None = None
    """An in-house judge (another entry, inside the perimeter) that grades this judge's restricted items in
    the same run, so a run with an external judge need not leave its restricted areas out."""
    judging: Literal["online", "batch"] = "online"
    """``online``: one call per verdict; ``batch``: a run's verdicts go through the vendor's batch API
    (Anthropic Message Batches, OpenAI Batch), priced at ``batch_discount`` (``evals docs batch``)."""
    batch_discount: float = Field(default=0.5, gt=0, le=1)
    """What a batched verdict costs, as a share of the endpoint's token prices (both vendors: 0.5)."""
    batch_poll_s: float = Field(default=30.0, gt=0, le=3600)
    """Seconds before the first check of a submitted batch; each next wait doubles, up to 10 minutes."""

    def snapshot(self) -> dict[str, Any]:
        data = super().snapshot()
        if self.judging == "online":  # recorded as every run before batch judging was: no batch settings
            for key in ("judging", "batch_discount", "batch_poll_s"):
                data.pop(key, None)
        return data

    @field_validator("judging")
    @classmethod
    def _batch_vendor(cls, judging: str, info: ValidationInfo) -> str:
        provider = info.data.get("provider")
        if judging == "batch" and provider not in ("anthropic", "openai"):
            raise ValueError(
                f"batch judging needs a vendor's batch API: set provider: anthropic or openai (this judge's "
                f"provider is {provider!r}), or judging: online"
            )
        return judging

    @field_validator("panel", mode="before")
    @classmethod
    def _panel_list(cls, value: Any) -> Any:
        return {"members": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _panel_alone(self) -> JudgeEndpoint:
        if "max_answer_chars" in self.model_fields_set:
            raise ValueError(
                "max_answer_chars caps a model's answers: set it under 'models:', not on a judge"
            )
        others = sorted(self.model_fields_set - {"panel"})
        if self.panel is not None and others:
            raise ValueError(
                f"a panel entry holds only 'panel:' (members and aggregate), not {', '.join(others)}: "
                "each member's settings are its own judge entry's"
            )
        return self
