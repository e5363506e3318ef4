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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from evals.errors import ConfigError
from evals.perimeter import frontier_vendor, is_external
from evals.records import MAX_ANSWER_CHARS, CustomPattern, Sensitivity
from evals.secrets import StoreSetting, safe_url, url_secrets
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
    max_answer_chars: int | None = Field(default=None, ge=1)
    """A model's answers are cut to this many characters (None: ``records.MAX_ANSWER_CHARS``, 20,000) before
    they are stored or graded, and marked cut off (the judge is told). Not a judge's setting."""
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


class AreaUsage(BaseModel):
    """An area's traffic (``usage: {areas: {billing: {requests_per_month: 120000}}}``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    requests_per_month: float = Field(ge=0)
    """Requests a month; their tokens per request come from the runs themselves."""


class Usage(BaseModel):
    """Monthly volume per area (``usage:``): listed here, or summed from a CSV of real traffic."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    areas: dict[str, AreaUsage] = Field(default_factory=dict)
    csv: str | None = None
    """A CSV with columns ``area`` and ``requests`` (and optionally ``month``, ``YYYY-MM``: the volume is
    then the mean over the months present), relative to the config's folder. Areas listed under ``areas``
    win over the file."""


class Hosting(BaseModel):
    """What owning the inference costs (``hosting:``), for the self-hosted side of the routing table."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gpu_hour: float = Field(ge=0)
    """Price of one GPU for one hour (cloud rate, or amortised purchase plus power)."""
    gpus: int = Field(default=1, ge=1)
    """GPUs the model's server runs on (the server measured by the runs)."""
    utilisation: float = Field(default=0.6, gt=0, le=1)
    """Share of paid GPU time that serves requests: idle capacity, peaks and headroom are paid for too."""
    fixed_monthly: float = Field(default=0.0, ge=0)
    """Monthly costs that do not grow with volume: a share of an engineer, monitoring, storage."""


class RetentionSettings(BaseModel):
    """How long the store keeps the text of runs (``retention:`` in evals.yaml; ``evals purge``).

    Scores, aggregates and hashes are always kept; only questions, answers, reasoning, rationales and raw
    verdicts of older runs are removed (see ``evals.store.purge``).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    text_days: int | None = Field(default=None, ge=1)
    """Keep the text of runs that ended less than this many days ago; None: keep it (no purge without
    ``--older-than``). ``scripts/nightly.sh`` purges with it after each night's runs."""
    include_baselines: bool = False
    """Purge runs approved as baselines too (by default their text is kept, for side-by-side review)."""


class RedactionSettings(BaseModel):
    """What is removed from text before it goes to an external endpoint (``redaction:`` in evals.yaml)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Redact before every external call; ``false`` sends text as written (the run's snapshot and the
    scorecard then say "not redacted")."""
    ner_model: str | None = None
    """An installed spaCy model package (``en_core_web_sm``) that finds names and places; without one, only
    the pattern recognizers run, and every run says so."""
    patterns: tuple[CustomPattern, ...] = ()
    """The team's own identifiers, redacted in every external call (runs, reruns, calibration, probes,
    references, generated items' documents), beside each suite's ``redact:``: the same shape,
    ``{name, regex, context, score}``. A name given here and in a suite must mean the same pattern
    (``evals.outbound.redaction.combined_patterns``)."""

    @field_validator("patterns")
    @classmethod
    def _unique_names(cls, patterns: tuple[CustomPattern, ...]) -> tuple[CustomPattern, ...]:
        # Reported at each repeat's own line, as the other faults of a pattern are.
        seen: set[str] = set()
        problems = []
        for index, pattern in enumerate(patterns):
            if pattern.name in seen:
                reason = f"pattern name {pattern.name!r} is given twice; give each pattern its own name"
                problems.append(
                    InitErrorDetails(
                        type=PydanticCustomError("duplicate", reason), loc=(index, "name"), input=None
                    )
                )
            seen.add(pattern.name)
        if problems:
            raise ValidationError.from_exception_data("RedactionSettings", problems)
        return patterns


class CanarySettings(BaseModel):
    """The judge's drift canary (``canary:`` in evals.yaml; ``evals docs canary``)."""

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
    store: StoreSetting | None = None
    """Where runs are stored: ``postgresql://user@host/db`` or ``host=... dbname=...`` for one store shared by
    several machines (``postgres`` extra), or a SQLite file; default ``<reports_dir>/evals.db``. ``EVALS_STORE``
    overrides it. Never put the password here: libpq reads ``PGPASSWORD`` or ``~/.pgpass``."""
    store_password_env: str | None = None
    """Name of the environment variable holding the store's password, when it is not ``PGPASSWORD``."""
    default_model: str | None = None
    """Model used when ``--model`` is not given (default: the first one)."""
    scorecard: ScorecardSettings = Field(default_factory=ScorecardSettings)
    """Thresholds of weak areas and drift."""
    default_judge: str | None = None
    """Judge used when ``--judge`` is not given (default: the first judge whose key is set, else offline)."""
    usage: Usage = Field(default_factory=Usage)
    """Monthly volume per area, for the routing table's economics (``evals route``)."""
    hosting: Hosting | None = None
    """The self-hosted side's costs; without it the routing table shows no self-hosted cost."""
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    """How long the text of runs is kept (``evals purge``)."""
    internal_hosts: list[str] = Field(default_factory=list)
    """Hosts inside the perimeter besides loopback: ``vllm.internal`` or ``*.corp.example``."""
    redaction: RedactionSettings = Field(default_factory=RedactionSettings)
    """Redaction before external calls (see `evals docs redaction`)."""
    default_sensitivity: Sensitivity = "internal"
    """The level of text whose sensitivity is not known (a labels row without a ``sensitivity`` column whose
    question the store does not know, a document given to ``suite generate``): ``internal`` (redacted, then
    sent to external endpoints), ``public``, or ``restricted`` (unknown text never goes to an external
    endpoint)."""
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

    @model_validator(mode="after")
    def _resolve_external(self) -> Config:
        # Each endpoint's ``external`` becomes a definite answer, kept in every run's config snapshot.
        for endpoint in (*self.models.values(), *self.judges.values()):
            endpoint.external = is_external(
                endpoint.provider, endpoint.base_url, endpoint.external, self.internal_hosts
            )
        return self

    @model_validator(mode="after")
    def _panels(self) -> Config:
        problems = [
            InitErrorDetails(type=PydanticCustomError("panel", reason), loc=loc, input=None)
            for loc, reason in [*panel_problems(self.judges), *inhouse_problems(self.judges)]
        ]
        if problems:
            raise ValidationError.from_exception_data("Config", problems)
        return self

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
            keyed = (
                n for n, j in self.judges.items() if j.provider != OFFLINE and j.panel is None and j.api_key()
            )
            name = next(keyed, OFFLINE)  # a panel costs each member's calls: only when asked for by name
        if name == OFFLINE and OFFLINE not in self.judges:
            return OFFLINE, JudgeEndpoint(provider="offline", model="offline-reference")
        if name not in self.judges:
            known = sorted({*self.judges, OFFLINE})
            raise ConfigError(f"unknown judge {name!r}; configured: {', '.join(known)}")
        judge = self.judges[name]
        if judge.panel is not None:
            judge = judge.model_copy(deep=True)
            assert judge.panel is not None
            judge.panel._endpoints = {m: self.judge(m)[1] for m in judge.panel.members}
        return name, judge

    def path(self, folder: str) -> Path:
        return (self.root / folder) if not Path(folder).is_absolute() else Path(folder)


def panel_problems(judges: dict[str, JudgeEndpoint]) -> list[tuple[tuple[str | int, ...], str]]:
    """Each panel's faults as (location in the config, what is wrong): a member that is not a configured
    judge, or is itself a panel, or is listed twice; fewer than two members; members with different rubrics."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    for name, judge in judges.items():
        if judge.panel is None:
            continue
        where: tuple[str | int, ...] = ("judges", name, "panel", "members")
        members = judge.panel.members
        if len(members) < 2:
            out.append((where, f"a panel needs at least two judges, not {len(members)}"))
        seen: set[str] = set()
        for i, member in enumerate(members):
            if member in seen:
                out.append(((*where, i), f"{member!r} is listed twice; list each judge once"))
            elif member not in judges and member != OFFLINE:
                known = ", ".join(sorted({OFFLINE, *(n for n, j in judges.items() if j.panel is None)}))
                out.append(((*where, i), f"unknown judge {member!r}; configured judges: {known}"))
            elif member in judges and judges[member].panel is not None:
                out.append(
                    ((*where, i), f"{member!r} is a panel itself; a panel's members are single judges")
                )
            seen.add(member)
        offline = JudgeEndpoint(provider="offline")  # the built-in offline judge, unless configured
        singles = [judges.get(m, offline) for m in seen if m in judges or m == OFFLINE]
        rubrics = {j.rubric for j in singles if j.panel is None}
        if len(rubrics) > 1:
            out.append((
                where,
                f"the members grade with different rubrics ({', '.join(sorted(rubrics))}); a panel's "
                "members must share one, or their agreement means nothing",
            ))  # fmt: skip
    return out


def inhouse_problems(judges: dict[str, JudgeEndpoint]) -> list[tuple[tuple[str | int, ...], str]]:
    """Each ``restricted_judge`` that is not a configured single judge inside the perimeter."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    for name, judge in judges.items():
        if judge.restricted_judge is None or (judge.restricted_judge == OFFLINE and OFFLINE not in judges):
            continue  # the built-in offline judge makes no call
        inhouse = judges.get(judge.restricted_judge)
        if inhouse is None or inhouse.panel is not None or inhouse.restricted_judge or inhouse is judge:
            reason = f"{judge.restricted_judge!r} is not another configured single judge"
        elif inhouse.is_external():
            reason = f"{judge.restricted_judge!r} is an external endpoint; restricted text stays in-house"
        else:
            continue
        out.append((("judges", name, "restricted_judge"), f"{reason}: name a judge with external: false"))
    return out


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
