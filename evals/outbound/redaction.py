"""Redaction: identifiers in an item's text replaced by typed placeholders before it leaves the perimeter.

Detection is Microsoft Presidio's: its pattern and checksum recognizers (email, phone, US SSN, credit card,
IBAN, IP address, URL, dates, US driver licence and passport), two context recognizers of our own (medical
record and account numbers: a number only counts with a word such as "MRN" or "account" near it), a
suite's own patterns, and, when a spaCy NER model is installed and named in evals.yaml, names and places.
Presidio runs on a blank spaCy pipeline (no model download; a lower-cased token stands in for the lemma
that context words are matched against), and the email recognizer's domain check uses tldextract's bundled
suffix list, never fetched: redaction works offline.

Detection reads each text normalised (``evals.outbound.normalise``: HTML entities and percent-escapes
decoded, invisible characters removed, NFKC, digit groups joined across line breaks), and each placeholder
replaces the span of the text as written that the identifier came from (all of ``john&#64;example.com``);
text outside detections is sent as written. The patterns a run uses are its suite's and the config's
(``combined_patterns``).

One mapping per item: question, reference and answer are redacted together, in that order, so the same
value gets the same placeholder (``<EMAIL_1>``) in all three and the judge can still compare answer and
reference; "the same value" is compared normalised, so ``jane&#64;example.com`` in the question and
``jane@example.com`` in the answer share one. Overlapping detections are resolved the same way every time:
the longest span, then the highest score, then the kind listed first in ``KINDS``. Placeholders are mapped
back (``Redacted.restore``), to the value as first written, only for what is shown or stored locally, such
as the judge's rationale.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import metadata
from typing import Any

from evals.errors import ConfigError
from evals.outbound.callcontext import current
from evals.outbound.normalise import Normalised, normalise
from evals.records import CustomPattern, Item, Message, content_hash

log = logging.getLogger("evals.outbound.redaction")

THRESHOLD = 0.4
"""Lowest Presidio score that counts: weak patterns (a bare 9-digit number as a passport) need a context
word near them (Presidio adds 0.35 for one) to reach it."""
RECOGNIZERS_VERSION = 3
"""Bumped when the built-in recognizers, their settings or the normalisation change: a new version means new
cache keys. 2: detection on normalised text. 3: dashes, digit-group separators, ``[at]``, backslash escapes
and addresses split over lines normalised; IBANs in any case."""
NO_NER = "names and places are not detected: no NER model installed"

KINDS: dict[str, str] = {
    "EMAIL_ADDRESS": "EMAIL",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "SSN",
    "IP_ADDRESS": "IP",
    "URL": "URL",
    "MEDICAL_RECORD_NUMBER": "MEDICAL_RECORD",
    "ACCOUNT_NUMBER": "ACCOUNT",
    "US_PASSPORT": "PASSPORT",
    "US_DRIVER_LICENSE": "DRIVER_LICENSE",
    "PHONE_NUMBER": "PHONE",
    "DATE_TIME": "DATE",
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
}
"""Presidio's entity types and the placeholder kind each becomes, most specific first (ties go to it)."""

_MRN_CONTEXT = ["mrn", "medical", "record", "chart", "patient", "hospital"]
_ACCOUNT_CONTEXT = ["account", "acct", "acc", "a/c", "customer", "member"]
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")


@dataclass(frozen=True)
class Redacted:
    """Texts as sent, with the placeholders they got and how many identifiers of each kind were replaced."""

    texts: tuple[str | None, ...]
    """The texts in the order given, each identifier replaced by its placeholder (None stays None)."""
    mapping: dict[str, str] = field(default_factory=dict)
    """Placeholder (``<EMAIL_1>``) → the value it stands for; never sent anywhere."""
    counts: dict[str, int] = field(default_factory=dict)
    """Identifiers replaced, by kind (every occurrence counts)."""

    def restore(self, text: str | None) -> str | None:
        """``text`` with this mapping's placeholders put back (for local display and storage only)."""
        if text is None or not self.mapping:
            return text
        return _PLACEHOLDER.sub(lambda m: self.mapping.get(m.group(0), m.group(0)), text)


@dataclass(frozen=True)
class RedactedItem:
    """An item and an answer as an external endpoint is sent them."""

    item: Item
    answer: str | None
    redacted: Redacted

    @property
    def counts(self) -> dict[str, int]:
        return self.redacted.counts


def _lower_lemma(doc: Any) -> Any:
    # A blank pipeline has no lemmatizer; Presidio matches context words against lemmas.
    for token in doc:
        token.lemma_ = token.lower_
    return doc


class Redactor:
    """Finds identifiers with Presidio and replaces them by numbered typed placeholders.

    Built cheaply; the analyzer (a spaCy pipeline and the recognizers) is made on first use.
    """

    def __init__(self, patterns: Sequence[CustomPattern] = (), ner_model: str | None = None):
        self.patterns = tuple(patterns)
        self.ner_model = ner_model

    @cached_property
    def version(self) -> str:
        """``presidio-<version>+<hash>``: the hash covers our recognizers' version (normalisation included),
        the patterns (the suite's and the config's, in any order) and the NER model asked for; it is part of
        every judgment cache key made with redaction."""
        spec = {
            "recognizers": RECOGNIZERS_VERSION,
            "threshold": THRESHOLD,
            "patterns": sorted(
                (p.model_dump(mode="json") for p in self.patterns),
                key=lambda p: json.dumps(p, sort_keys=True),
            ),
            "ner": self.ner_model if self.ner_active else None,
        }
        return f"presidio-{metadata.version('presidio-analyzer')}+{content_hash(spec)}"

    @cached_property
    def ner_active(self) -> bool:
        """True when the configured NER model is installed (names and places are then found)."""
        if self.ner_model is None:
            return False
        import spacy.util  # heavy; only redaction needs it

        return bool(spacy.util.is_package(self.ner_model))

    @property
    def note(self) -> str | None:
        """What is not detected and why (no NER model), or None."""
        if self.ner_active:
            return None
        if self.ner_model is not None:
            return f"{NO_NER} ({self.ner_model!r} is not installed)"
        return NO_NER

    def snapshot(self) -> dict[str, Any]:
        """What a run records about its redaction."""
        return {
            "version": self.version,
            "ner": self.ner_model if self.ner_active else None,
            "note": self.note,
        }

    @cached_property
    def _analyzer(self) -> Any:
        return _build_analyzer(self.patterns, self.ner_model if self.ner_active else None)

    def redact(self, texts: Sequence[str | None]) -> Redacted:
        """Redact ``texts`` with one mapping: a value seen again, in any of them, gets the same placeholder.

        A value found in one text is replaced wherever else it occurs in them, even where its recognizer
        alone would not have found it (an MRN in the reference without the word "MRN" beside it). Detection
        reads the texts normalised; placeholders replace the text as written (``evals.outbound.normalise``).
        """
        views = [normalise(text or "") for text in texts]
        found = [self._candidates(view.text) if view.text else [] for view in views]
        known: dict[str, str] = {}
        for view, candidates in zip(views, found, strict=True):
            for start, end, kind, _ in _resolve(candidates):
                known.setdefault(view.text[start:end], kind)
        mapping: dict[str, str] = {}
        by_value: dict[tuple[str, str], str] = {}
        numbers: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        out: list[str | None] = []
        for text, view, candidates in zip(texts, views, found, strict=True):
            if not text:
                out.append(text)
                continue
            for value, kind in known.items():
                candidates += [
                    (m.start(), m.end(), kind, 1.0) for m in re.finditer(re.escape(value), view.text)
                ]
            parts, last = [], 0
            for start, end, kind, _ in _resolve(candidates):
                value = view.text[start:end]
                start, end = _written_span(view, start, end, last)
                if start >= end:
                    continue  # wholly inside the previous detection's written span
                placeholder = by_value.get((kind, value))
                if placeholder is None:
                    numbers[kind] += 1
                    placeholder = by_value[(kind, value)] = f"<{kind}_{numbers[kind]}>"
                    mapping[placeholder] = text[start:end]
                counts[kind] += 1
                parts += [text[last:start], placeholder]
                last = end
            out.append("".join(parts) + text[last:])
        return Redacted(tuple(out), mapping, dict(sorted(counts.items())))

    def redact_item(self, item: Item, answer: str | None = None) -> RedactedItem:
        """The item (question or conversation, and reference) and the answer, redacted with one mapping."""
        turns = [m.content for m in item.messages] if item.messages else [item.question]
        red = self.redact([*turns, item.reference, answer])
        texts = list(red.texts)
        sent_answer, reference = texts.pop(), texts.pop()
        if item.messages:
            messages = tuple(
                Message(role=m.role, content=t or "") for m, t in zip(item.messages, texts, strict=True)
            )
            update: dict[str, Any] = {"messages": messages}
        else:
            update = {"question": texts[0]}
        return RedactedItem(item.model_copy(update={**update, "reference": reference}), sent_answer, red)

    def _candidates(self, text: str) -> list[tuple[int, int, str, float]]:
        """Every detection in ``text`` as (start, end, placeholder kind, score), overlaps included."""
        found = self._analyzer.analyze(text=text, language="en", score_threshold=THRESHOLD)
        return [(r.start, r.end, KINDS.get(r.entity_type, r.entity_type), r.score) for r in found]


_ORDER = {kind: rank for rank, kind in enumerate(KINDS.values())}


def _written_span(view: Normalised, start: int, end: int, last: int) -> tuple[int, int]:
    """The span of the text as written behind ``view.text[start:end]``, starting no earlier than ``last``
    (two detections can come from one written character: the two letters of a ligature)."""
    start, end = view.span(start, end)
    return max(start, last), end


def _resolve(candidates: list[tuple[int, int, str, float]]) -> list[tuple[int, int, str, float]]:
    """Non-overlapping detections in text order: the longest wins, then the surest, then the kind listed
    first in ``KINDS`` (a suite's own kinds before all of them), then the earliest."""
    ranked = sorted(candidates, key=lambda c: (-(c[1] - c[0]), -c[3], _ORDER.get(c[2], -1), c[0], c[2]))
    chosen: list[tuple[int, int, str, float]] = []
    for candidate in ranked:
        if all(candidate[1] <= c[0] or candidate[0] >= c[1] for c in chosen):
            chosen.append(candidate)
    return sorted(chosen)


@cache
def _build_analyzer(patterns: tuple[CustomPattern, ...], ner_model: str | None) -> Any:
    """Presidio's analyzer on a blank (or NER) spaCy pipeline, with our recognizers only; built once per
    set of patterns in a process (it takes a second or more), then only read."""
    import spacy  # heavy: imported when the first text is redacted
    import tldextract
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        DateRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UrlRecognizer,
        UsLicenseRecognizer,
        UsPassportRecognizer,
        UsSsnRecognizer,
    )
    from spacy.language import Language

    if not Language.has_factory("evals_lower_lemma"):
        Language.component("evals_lower_lemma", func=_lower_lemma)
    # The bundled public-suffix snapshot: never a download at run time.
    offline_tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld(pattern_text).fqdn != ""

    class AnyCaseIbanRecognizer(IbanRecognizer):
        """An IBAN in lower or mixed case (``gb82 west 1234...``) is the same account: checked in capitals."""

        def __init__(self) -> None:
            super().__init__(regex_flags=re.DOTALL | re.MULTILINE | re.IGNORECASE)

        def validate_result(self, pattern_text: str) -> bool | None:
            return super().validate_result(pattern_text.upper())

    class Engine(SpacyNlpEngine):
        def load(self) -> None:
            nlp = spacy.load(ner_model) if ner_model else spacy.blank("en")
            if not ner_model:
                nlp.add_pipe("evals_lower_lemma")
            self.nlp = {"en": nlp}  # type: ignore[assignment]

    engine = Engine(models=[{"lang_code": "en", "model_name": ner_model or "blank"}])
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    recognizers = [
        OfflineEmailRecognizer(), PhoneRecognizer(), UsSsnRecognizer(), CreditCardRecognizer(),
        AnyCaseIbanRecognizer(), IpRecognizer(), UrlRecognizer(), DateRecognizer(), UsLicenseRecognizer(),
        UsPassportRecognizer(),
        PatternRecognizer(
            supported_entity="MEDICAL_RECORD_NUMBER", context=_MRN_CONTEXT,
            patterns=[Pattern("medical record number", r"\b[A-Z]{0,3}-?\d{5,10}\b", 0.05)],
        ),
        PatternRecognizer(
            supported_entity="ACCOUNT_NUMBER", context=_ACCOUNT_CONTEXT,
            patterns=[Pattern("account number", r"\b\d{6,17}\b", 0.05)],
        ),
    ]  # fmt: skip
    recognizers += [
        PatternRecognizer(
            supported_entity=p.name, name=f"suite:{p.name}", context=list(p.context),
            patterns=[Pattern(p.name, p.regex, p.score)],
        )
        for p in patterns
    ]  # fmt: skip
    if ner_model:
        recognizers.append(SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]))
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


def combined_patterns(
    config_patterns: Sequence[CustomPattern], run_patterns: Sequence[CustomPattern]
) -> tuple[CustomPattern, ...]:
    """The patterns a run's ``Redactor`` uses: evals.yaml's ``redaction.patterns`` (every call) and the run's
    own (its suite's ``redact:``), each name once, sorted by name.

    A name in both stands for one identifier: the same definition is kept once; two different ones are a
    ``ConfigError`` (which one applies would otherwise depend on the command).
    """
    chosen: dict[str, tuple[CustomPattern, str]] = {}
    sources = (("redaction.patterns in evals.yaml", config_patterns), ("the suite's redact:", run_patterns))
    for source, patterns in sources:
        for pattern in patterns:
            earlier = chosen.get(pattern.name)
            if earlier is None:
                chosen[pattern.name] = (pattern, source)
            elif earlier[0] != pattern:
                differ = [
                    f for f in CustomPattern.model_fields if getattr(earlier[0], f) != getattr(pattern, f)
                ]
                where = earlier[1] if earlier[1] == source else f"{earlier[1]} and {source}"
                raise ConfigError(
                    f"redaction pattern {pattern.name!r} is defined twice with a different "
                    f"{' and '.join(differ)} ({where}); give one of them another name, or make them the same"
                )
    return tuple(chosen[name][0] for name in sorted(chosen))


def record_redactions(counts: dict[str, int]) -> None:
    """Add ``counts`` to the current call's context (``evals.outbound.callcontext``): the audit trail and the run's
    store read them from there."""
    context = current()
    if context is not None:
        for kind, n in counts.items():
            context.redactions[kind] = context.redactions.get(kind, 0) + n
