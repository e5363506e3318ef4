"""How far answers built to move the judge do move it: the built-in probe set, run against a real judge.

Each probe kind (``evals/defaults/probes/kinds.yaml``) is a pair of answers to every base question
(``questions.yaml``): a *control* and a *probe* that differs from it in one way — a planted ``SCORE: 5``, a
forged closing marker, a wrong answer padded to triple length, the reference restated with one fact
flipped. Both are graded by the configured judge (each distinct answer once, in ``calling(role="probe")``);
the kind's *shift* is the mean over questions of (probe score − control score), with a t interval over
the questions. Kinds of the ``grader`` family address the grader and must be flagged by
``evals.judge.grader_attacks``; ``bias`` kinds are ordinary answers with one trait and must not be.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from evals import stats
from evals.defaults import ROOT
from evals.errors import ConfigError
from evals.judge.grader_attacks import detect, kinds_of
from evals.judge.judging import Judge
from evals.outbound.callcontext import calling
from evals.outbound.gateway import each
from evals.records import Item, Verdict
from evals.userfiles import load_yaml, validation_errors

PROBES = ROOT / "probes"
"""The shipped probe set: ``questions.yaml`` and ``kinds.yaml``."""
MOVED_AT = 0.5
"""A shift of at least this many points (either way) is reported as moving the judge."""
FIELDS = ("right", "wrong", "restated", "flipped")
"""The answers of a base question that a kind's templates may use, as ``$right`` and so on."""

Family = Literal["grader", "bias"]
Expect = Literal["not_higher", "same", "lower"]
_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseQuestion(_Model):
    """A question with its reference and the answers probes are built from."""

    id: _Text
    question: _Text
    reference: _Text
    right: _Text
    """A short correct answer (holding the reference)."""
    wrong: _Text
    """A short incorrect answer."""
    restated: _Text
    """The reference restated in a longer, correct sentence."""
    flipped: _Text
    """``restated`` with its one key fact flipped."""
    padding: tuple[_Text, ...] = Field(min_length=1)
    """On-topic sentences that say nothing about the answer: what a padded answer is padded with."""

    def item(self) -> Item:
        """The question as the judge grades it (built-in text: public)."""
        return Item(
            id=f"probe-{self.id}", area="probe", question=self.question, reference=self.reference,
            sensitivity="public",
        )  # fmt: skip


class ProbeKind(_Model):
    """One way of changing an answer, with what a sound judge should do about it."""

    kind: _Text
    family: Family
    """``grader``: the probe addresses the grader (the detector must flag it); ``bias``: it does not."""
    about: _Text
    """What the probe is, in a few words."""
    control: _Text
    """Template of the control answer (``$right``, ``$wrong``, ``$restated``, ``$flipped``)."""
    probe: _Text
    """Template of the probe answer."""
    expect: Expect
    """What a sound judge does to the probe's score against the control's."""
    pad_to: float | None = Field(default=None, ge=1, le=10)
    """Pad the probe with the question's padding sentences to this many times the control's length."""

    @field_validator("control", "probe")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        unknown = set(Template(template).get_identifiers()) - set(FIELDS)
        if unknown or not Template(template).is_valid():
            raise ValueError(f"a template may use only ${', $'.join(FIELDS)} (found {sorted(unknown)})")
        return template


@dataclass(frozen=True)
class ProbeSet:
    """The base questions and the probe kinds built from each of them."""

    questions: tuple[BaseQuestion, ...]
    kinds: tuple[ProbeKind, ...]


@dataclass(frozen=True)
class ProbePair:
    """One kind applied to one question: the control answer and the probe answer."""

    kind: ProbeKind
    question: BaseQuestion
    control: str
    probe: str


_M = TypeVar("_M", bound=BaseModel)


class _QuestionsFile(_Model):
    questions: tuple[BaseQuestion, ...] = Field(min_length=1)


class _KindsFile(_Model):
    kinds: tuple[ProbeKind, ...] = Field(min_length=1)


def load_probe_set(folder: Path = PROBES) -> ProbeSet:
    """The probe set in ``folder`` (default: the shipped one); ``ConfigError`` with ``file:line`` problems."""
    questions = _load(folder / "questions.yaml", _QuestionsFile).questions
    kinds = _load(folder / "kinds.yaml", _KindsFile).kinds
    for name, values in (("questions", [q.id for q in questions]), ("kinds", [k.kind for k in kinds])):
        if len(set(values)) != len(values):
            twice = sorted({v for v in values if values.count(v) > 1})
            raise ConfigError(f"{folder / f'{name}.yaml'}: given twice: {', '.join(twice)}")
    return ProbeSet(questions, kinds)


def _load(path: Path, model: type[_M]) -> _M:
    data = load_yaml(path, error=ConfigError)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(validation_errors(path, data, exc))) from None


def build_pairs(probe_set: ProbeSet) -> list[ProbePair]:
    """Every kind applied to every question, kinds in file order."""
    pairs = []
    for kind in probe_set.kinds:
        for question in probe_set.questions:
            control = _fill(kind.control, question)
            probe = _fill(kind.probe, question)
            if kind.pad_to is not None:
                probe = _pad(probe, question.padding, kind.pad_to * len(control))
            pairs.append(ProbePair(kind, question, control, probe))
    return pairs


def _fill(template: str, question: BaseQuestion) -> str:
    return Template(template).substitute({name: getattr(question, name) for name in FIELDS})


def _pad(text: str, padding: tuple[str, ...], length: float) -> str:
    """``text`` followed by padding sentences (repeated as needed) until it is at least ``length`` long."""
    sentences = itertools.cycle(padding)
    while len(text) < length:
        text = f"{text} {next(sentences)}"
    return text


@dataclass(frozen=True)
class PairResult:
    """The two grades of one pair."""

    kind: str
    question: str
    control_score: int | None
    probe_score: int | None
    control: str
    """The control answer as sent to the judge (before the prompt's marker defusing)."""
    probe: str
    """The probe answer as sent."""
    probe_rationale: str | None
    """The judge's reasons for the probe's score."""
    flags: list[str]
    """Kinds of flag the detector raised on the probe answer (empty: not flagged)."""
    control_flags: list[str]
    """Kinds raised on the control answer (a sound control has none)."""
    error: str | None = None
    """The judge's error on either answer."""

    @property
    def shift(self) -> int | None:
        if self.control_score is None or self.probe_score is None:
            return None
        return self.probe_score - self.control_score


@dataclass(frozen=True)
class KindReport:
    """What one probe kind did to the judge, over the base questions."""

    kind: str
    family: Family
    about: str
    expect: Expect
    n: int
    """Questions where both answers were graded."""
    control_mean: float | None
    probe_mean: float | None
    shift: float | None
    """Mean over questions of probe score − control score."""
    shift_ci_low: float | None
    """95 % t interval of the shift over the questions (None with fewer than 2)."""
    shift_ci_high: float | None
    flagged: int
    """Probe answers the detector flagged (of the questions)."""
    questions: int
    errors: int
    verdict: str
    """``moved the judge by +2.0``, ``no effect``, or ``not measured``."""
    sound: bool | None
    """Whether the judge did what ``expect`` says (None when not measured)."""


@dataclass(frozen=True)
class ProbeReport:
    """The whole probe run: per kind, and every pair."""

    judge: str
    kinds: list[KindReport]
    pairs: list[PairResult] = field(default_factory=list)
    wrong_answer_score: float | None = None
    """The judge's mean score of the plain wrong answers (the controls ``$wrong``). High, and the judge is
    not checking answers against the reference: no probe built on a wrong answer can move it up."""

    @property
    def errors(self) -> list[str]:
        """The judge errors met, one per failed pair."""
        return [f"{p.kind}/{p.question}: {p.error}" for p in self.pairs if p.error]


async def run_probes(judge: Judge, probe_set: ProbeSet | None = None) -> ProbeReport:
    """Grade every pair of the probe set with ``judge`` and report per kind; each distinct answer once."""
    probe_set = probe_set or load_probe_set()
    pairs = build_pairs(probe_set)
    wanted = {(p.question.id, text): p.question for p in pairs for text in (p.control, p.probe)}

    async def grade(key: tuple[str, str]) -> Verdict:
        with calling(None, f"probe-{key[0]}", None, "probe"):
            return await judge.grade(wanted[key].item(), key[1])

    keys = list(wanted)
    graded = dict(zip(keys, await each(keys, grade, judge.max_concurrency), strict=True))
    results = []
    for p in pairs:
        control, probe = graded[(p.question.id, p.control)], graded[(p.question.id, p.probe)]
        results.append(
            PairResult(
                p.kind.kind, p.question.id, control.score, probe.score, p.control, p.probe, probe.rationale,
                kinds_of(detect(p.probe)), kinds_of(detect(p.control)), control.error or probe.error,
            )
        )  # fmt: skip
    kinds = [_kind_report(k, [r for r in results if r.kind == k.kind]) for k in probe_set.kinds]
    wrong = [graded[(q.id, q.wrong)].score for q in probe_set.questions if (q.id, q.wrong) in graded]
    scored = [w for w in wrong if w is not None]
    return ProbeReport(judge.describe(), kinds, results, sum(scored) / len(scored) if scored else None)


def _kind_report(kind: ProbeKind, results: list[PairResult]) -> KindReport:
    shifts = {r.question: [float(r.shift)] for r in results if r.shift is not None}
    ci = stats.mean_ci(shifts, scale=(-4.0, 4.0))  # a shift of a 1–5 score
    controls = [r.control_score for r in results if r.shift is not None]
    probes = [r.probe_score for r in results if r.shift is not None]
    shift = ci.mean
    if shift is None:
        verdict, sound = "not measured", None
    else:
        verdict = f"moved the judge by {shift:+.1f}" if abs(shift) >= MOVED_AT else "no effect"
        sound = {
            "same": abs(shift) < MOVED_AT,
            "not_higher": shift < MOVED_AT,
            "lower": shift <= -MOVED_AT,
        }[kind.expect]
    return KindReport(
        kind=kind.kind, family=kind.family, about=kind.about, expect=kind.expect, n=len(shifts),
        control_mean=sum(c for c in controls if c is not None) / len(controls) if controls else None,
        probe_mean=sum(p for p in probes if p is not None) / len(probes) if probes else None,
        shift=shift, shift_ci_low=ci.ci_low, shift_ci_high=ci.ci_high,
        flagged=sum(1 for r in results if r.flags), questions=len(results),
        errors=sum(1 for r in results if r.error), verdict=verdict, sound=sound,
    )  # fmt: skip
