"""``evals.yaml``: named models and judges, how to reach them, and the settings of every step.

Keys never live in this file: each endpoint names the environment variable that holds its key
(``api_key_env``), and the key is read from the environment only when a client is built. The endpoints
are ``endpoints.py``'s, the other sections ``sections.py``'s; ``Config`` puts them together.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from evals.config.endpoints import (
    DEFAULT_KEY_ENV,
    KEY_ENV_PATTERN,
    OFFLINE,
    Endpoint,
    JudgeEndpoint,
    PanelSettings,
)
from evals.config.sections import (
    AreaUsage,
    CanarySettings,
    Floor,
    GateSettings,
    Hosting,
    RedactionSettings,
    RequireCalibration,
    RetentionSettings,
    ScorecardSettings,
    TelemetrySettings,
    Usage,
)
from evals.errors import ConfigError
from evals.perimeter import is_external
from evals.records import Sensitivity
from evals.secrets import StoreSetting
from evals.userfiles import load_yaml, validation_errors

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_KEY_ENV",
    "KEY_ENV_PATTERN",
    "OFFLINE",
    "AreaUsage",
    "CanarySettings",
    "Config",
    "Endpoint",
    "Floor",
    "GateSettings",
    "Hosting",
    "JudgeEndpoint",
    "PanelSettings",
    "RedactionSettings",
    "RequireCalibration",
    "RetentionSettings",
    "ScorecardSettings",
    "TelemetrySettings",
    "Usage",
    "default_config",
    "load_config",
]

DEFAULT_CONFIG = Path("evals.yaml")


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
    """Thresholds of weak and strong areas, and the history's length."""
    gate: GateSettings = Field(default_factory=GateSettings)
    """The one decision's settings: margin, alpha, correction, minimum effect, pass score, minimum pairs,
    error rate (``evals docs gate``)."""
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
    telemetry: TelemetrySettings | None = None
    """Where OpenTelemetry spans go (the ``otel`` extra; ``evals docs telemetry``); None: nowhere."""
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
        if self.telemetry is not None:  # the collector is a destination like any endpoint
            telemetry = self.telemetry
            telemetry.external = is_external(
                "otlp", telemetry.otlp_endpoint, telemetry.external, self.internal_hosts
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
