"""The settings sections of ``evals.yaml`` besides its endpoints: scorecard, usage, hosting, retention,
redaction, canary, telemetry."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from evals.records import CustomPattern


class ScorecardSettings(BaseModel):
    """How the scorecard ranks areas and how much history it draws (``scorecard:`` in evals.yaml).

    What decides (pass score, alpha, correction, minimum effect, margin) is the ``gate:`` section's alone.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    weak_mean: float = Field(default=3.5, ge=1, le=5)
    """An area is weak when its mean score is below this ..."""
    weak_pass_rate: float = Field(default=0.6, ge=0, le=1)
    """... or its pass rate is below this."""
    strong_mean: float = Field(default=4.2, ge=1, le=5)
    """An area is strong when its mean is at least this and its pass rate at least ``strong_pass_rate``."""
    strong_pass_rate: float = Field(default=0.8, ge=0, le=1)
    history: int = Field(default=30, ge=2)
    """Runs of the suite shown in the history charts."""

    @model_validator(mode="before")
    @classmethod
    def _moved_to_gate(cls, data: Any) -> Any:
        # Older configs set the decision's settings here: say where they live now rather than "extra field".
        moved = sorted(set(data) & set(MOVED_TO_GATE)) if isinstance(data, dict) else []
        if moved:
            problems = [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "moved",
                        "has moved to the gate: section ({example})",
                        {"example": f"gate: {{{k}: ...}}"},
                    ),
                    loc=(k,),
                    input=None,
                )
                for k in moved
            ]
            raise ValidationError.from_exception_data("ScorecardSettings", problems)
        return data


MOVED_TO_GATE = ("pass_score", "alpha", "correction", "min_effect")
"""Keys of ``scorecard:`` in older configs that live in ``gate:`` now, under the same names."""


class Floor(BaseModel):
    """Absolute minimums for one area, whatever the baseline did (``gate: {floors: {billing: {mean: 3.5}}}``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    mean: float | None = Field(default=None, ge=1, le=5)
    pass_rate: float | None = Field(default=None, ge=0, le=1)


class RequireCalibration(BaseModel):
    """``gate: {require_calibration: {min_kappa: 0.6, max_age_days: 90}}``: decide only on a calibrated judge."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    min_kappa: float = Field(default=0.6, ge=-1, le=1)
    """The floor for the lower end of the weighted kappa's 95 % interval against people's labels."""
    max_age_days: int = Field(default=90, ge=1)
    """A calibration older than this many days is stale."""


class GateSettings(BaseModel):
    """The one decision's settings (``gate:`` in evals.yaml; ``--policy FILE`` overrides any of them).

    Every page that says whether a run regressed or may ship (scorecard, report, compare, gate, index)
    decides with these, through ``evals.scorecard.decision``; ``evals docs gate`` explains each.
    """

    # allow_inf_nan: a margin of .inf would pass every candidate; NaN would compare false everywhere.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    margin: float = Field(
        default=0.3, ge=0, validation_alias=AliasChoices("margin", "non_inferiority_margin")
    )
    """Overall: the one-sided 95 % lower bound of the paired Δ mean must be above −margin (points on 1–5).
    Per area: a simultaneous lower bound at or below −margin is "not shown non-inferior"."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Error rate of the decision: the one-sided overall bound is at 1 − alpha, the per-area intervals at
    1 − alpha over the family of areas."""
    correction: Literal["bonferroni", "bh"] = "bonferroni"
    """Across areas: ``bonferroni`` (family-wise: simultaneous intervals at 1 − alpha/m) or ``bh``
    (Benjamini–Hochberg, false discovery rate: intervals at 1 − R·alpha/m, R the areas it selects). An area's
    status and its interval always agree: significant exactly when its interval excludes 0. ``holm`` (older
    configs) is read as ``bonferroni``, whose intervals agree with its tests."""
    min_effect: float = Field(
        default=0.5, ge=0, validation_alias=AliasChoices("min_effect", "area_min_effect")
    )
    """A significant drop must be at least this many points for an area to be ``regressed`` (and a rise to
    be ``improved``)."""
    pass_score: int = Field(default=4, ge=1, le=5)
    """An answer passes when its score is at least this (pass rates, weak areas, floors)."""
    min_pairs: int = Field(default=20, ge=2)
    """The run cannot be decided with fewer items scored in both runs."""
    min_area_pairs: int = Field(default=5, ge=2)
    """An area with fewer paired items is "cannot decide" (it still counts in the overall bound)."""
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    """Fail when answer or judge errors exceed this share of the candidate's answers; a baseline beyond it
    is too thin to decide against (and is never chosen as a default baseline)."""
    strict_areas: bool = False
    """Fail the run on an area "not shown non-inferior", not only warn."""
    floors: dict[str, Floor] = Field(default_factory=dict)
    """Optional absolute floors per area (``geography: {mean: 3.5, pass_rate: 0.6}``)."""
    means: Literal["judge", "corrected"] = "judge"
    """``corrected``: an area where both runs have at least 20 randomly drawn human scores of the same items
    is decided on the PPI++ corrected Δ (``evals docs corrections``); the judge's Δ elsewhere, and each page
    says which."""
    confirm_repeats: int | None = Field(default=None, ge=2, le=10)
    """Off unless set: before failing an area, ``evals gate`` (and ``evals run`` when it knows its baseline)
    has the judge grade that area's answers of both runs again until each has this many verdicts, and
    decides on their means (``evals docs gate``)."""
    require_calibration: RequireCalibration | None = None
    """Off unless set: then the decision is "cannot decide" unless each judge that graded the candidate
    (fingerprint and rubric; each member of a panel) has a fresh calibration whose kappa clears the floor."""

    @field_validator("correction", mode="before")
    @classmethod
    def _holm(cls, value: Any) -> Any:
        return "bonferroni" if value == "holm" else value


class AreaUsage(BaseModel):
    """An area's traffic and latency target
    (``usage: {areas: {billing: {requests_per_month: 120000, latency_slo_ms: 800}}}``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    requests_per_month: float | None = Field(default=None, ge=0)
    """Requests a month; their tokens per request come from the runs themselves. None: no volume stated
    here (the ``usage.csv`` file may give one)."""
    latency_slo_ms: float | None = Field(default=None, gt=0)
    """The p99 answer latency the area needs, in milliseconds: a side of ``evals route`` whose measured
    p99 is above it is not recommended. None: ``usage.latency_slo_ms``."""


class Usage(BaseModel):
    """Monthly volume per area (``usage:``): listed here, or summed from a CSV of real traffic."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    areas: dict[str, AreaUsage] = Field(default_factory=dict)
    latency_slo_ms: float | None = Field(default=None, gt=0)
    """The p99 answer latency, in milliseconds, every area needs unless it states its own; None: no target."""
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


class TelemetrySettings(BaseModel):
    """Where OpenTelemetry spans go (``telemetry:`` in evals.yaml; the ``otel`` extra; ``evals docs telemetry``).

    Without this section nothing is exported and OpenTelemetry is never imported.
    """

    model_config = ConfigDict(extra="forbid")

    otlp_endpoint: str
    """The collector's OTLP/HTTP address: ``http://collector:4318`` (``/v1/traces`` is added) or the full
    traces URL. It is an outbound destination like any endpoint: external unless loopback, listed in
    ``internal_hosts`` or ``external: false``, and the perimeter's rules decide what text it gets."""
    service_name: str = Field(default="lookingglass", min_length=1)
    """``service.name`` of the spans' resource."""
    headers_env: str | None = None
    """The NAME of an environment variable holding the export's headers as ``key=value`` pairs separated by
    commas (``authorization=Bearer%20...``, values URL-encoded), read when a command starts; never the headers."""
    external: bool | None = None
    """Whether the collector is outside the perimeter; None decides by its host, as for an endpoint."""
    capture_text: bool = False
    """Also export the messages of each call (``gen_ai.input.messages``, ``gen_ai.output.messages``), under
    the same rules as the judge's explanations. Off by default, as the semantic conventions advise."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _collector_url(cls, url: str) -> str:
        # The message never repeats the URL: it may hold a password.
        expected = "expected an http:// or https:// URL with a host, e.g. http://localhost:4318"
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018  (raises ValueError for a port that is not a number in range)
        except ValueError:
            raise ValueError(f"not a valid URL: {expected}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(expected)
        if "@" in parts.netloc:
            raise ValueError("holds credentials; put them in the variable named by headers_env")
        if parts.query or parts.fragment or "?" in url or "#" in url:
            raise ValueError("has a query or fragment ('?...' or '#...'); end the URL at its path")
        if any(ch.isspace() or not ch.isprintable() for ch in url):
            raise ValueError(f"contains spaces or control characters: {expected}")
        return url

    @field_validator("headers_env")
    @classmethod
    def _variable_name(cls, name: str | None) -> str | None:
        # Never echo the value: when it is not a name, it is most likely the headers themselves.
        if name is not None and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            raise ValueError("expected the NAME of an environment variable (e.g. EVALS_OTLP_HEADERS)")
        return name

    def traces_url(self) -> str:
        """The URL spans are posted to: ``otlp_endpoint``, with ``/v1/traces`` added to a bare address."""
        parts = urllib.parse.urlsplit(self.otlp_endpoint)
        if parts.path.strip("/"):
            return self.otlp_endpoint
        return urllib.parse.urlunsplit(parts._replace(path="/v1/traces"))
