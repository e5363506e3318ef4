"""The offline reference judge: a deterministic score from token overlap with the reference answer.

Used when no frontier judge key is set, so a run still gets numbers; every scorecard made with it says so.
It needs no network and gives the same score for the same answer and reference, always.

Algorithm (version ``ALGORITHM``):

1. Normalise the answer and the reference alike: Unicode NFKC, lower case; split into word and number
   tokens, which drops punctuation; numbers lose thousands separators and trailing decimal zeros
   ("1,000" -> "1000", "12.0" -> "12", "3.50" -> "3.5"); the number words zero..twenty become digits
   ("seven" -> "7"); the articles "a", "an", "the" are dropped (unless the reference is nothing but
   articles, as the multiple-choice answer "A" is: then articles are kept on both sides).
2. Score:

   - 5 when the normalised reference appears in the normalised answer as a contiguous run of whole tokens
     (or equals it): "The capital is Paris." against "Paris";
   - otherwise the token F1 of answer against reference (the harmonic mean of precision, shared tokens
     over answer tokens, and recall, shared tokens over reference tokens, counting repeats), rounded to
     two decimals, gives 4 from 0.8, 3 from 0.5, 2 from 0.2, else 1;
   - an empty answer (nothing left after normalising) scores 1.

   An item without a reference gets no score but the error "the offline judge needs a reference answer".

Why these thresholds: 0.8 lets a close paraphrase through (four of five tokens shared, one word added or
changed) but not an answer missing a real part; 0.5 is about half the reference's words, the usual
"partly right"; 0.2 is a glancing overlap (one shared word in five), kept apart from nothing at all.
The rationale states the numbers, so every score can be checked by hand.

Known limits: it measures words, not meaning. Containment is fooled by an answer listing many candidates
("Paris, Lyon or Lima" contains "Lima" and scores 5); a correct answer in other words ("the 16th
president" for "Abraham Lincoln") scores low; a negation ("not Paris") still contains "Paris"; accents
are kept, so "Sao Paulo" and "São Paulo" differ. Treat its scores as a rough signal, not a grade.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

from evals.judge.cache_key import judgment_key
from evals.judge.rubrics import Rubric, RubricBook, RubricSearch
from evals.records import Item, Verdict

MODEL = "offline-reference"
"""The judge model recorded with every run and judgment it grades."""
ALGORITHM = 1
"""Bumped whenever a change of the algorithm could change a score, so cached scores are not reused."""
NO_REFERENCE = "the offline judge needs a reference answer"
UNUSABLE_REFERENCE = "the reference answer has no words or numbers for the offline judge to compare with"

BANDS = ((0.8, 4), (0.5, 3), (0.2, 2))
"""(lowest token F1, score) from the top; below the last band the score is 1."""
ARTICLES = frozenset({"a", "an", "the"})
NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}

# A number with thousands separators (only groups of exactly three digits), or a plain one, with an
# optional decimal part and a minus sign that is not a hyphen inside a word; else a run of letters/digits.
_TOKEN = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?!\d)|[^\W_]+",
)
_NUMBER = re.compile(r"-?[\d,]*\d(?:\.\d+)?")


def tokens(text: str, keep_articles: bool = False) -> list[str]:
    """The normalised tokens of ``text`` (see the module docstring)."""
    out = []
    for raw in _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()):
        token = _number(raw) if _NUMBER.fullmatch(raw) else raw
        token = NUMBER_WORDS.get(token, token)
        if keep_articles or token not in ARTICLES:
            out.append(token)
    return out


def _number(raw: str) -> str:
    """``-1,000.50`` -> ``-1000.5``: one spelling per value, as far as the digits allow."""
    sign = "-" if raw.startswith("-") else ""
    whole, _, fraction = raw.lstrip("-").replace(",", "").partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    value = f"{whole}.{fraction}" if fraction else whole
    return "0" if value == "0" else sign + value


def contains(haystack: list[str], needle: list[str]) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as a contiguous run of whole tokens."""
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def token_f1(answer: list[str], reference: list[str]) -> tuple[float, float, float]:
    """(F1, precision, recall) of the answer's tokens against the reference's, counting repeats."""
    shared = sum((Counter(answer) & Counter(reference)).values())
    if shared == 0:
        return 0.0, 0.0, 0.0
    precision = shared / len(answer)
    recall = shared / len(reference)
    return 2 * precision * recall / (precision + recall), precision, recall


def score_answer(answer: str, reference: str) -> tuple[int, str]:
    """(score, rationale) of ``answer`` against ``reference``; the whole algorithm, without I/O.

    ``ValueError`` when the reference has nothing to compare with (only punctuation).
    """
    keep = not tokens(reference)  # a reference made only of articles ("A") keeps them on both sides
    ref = tokens(reference, keep_articles=keep)
    got = tokens(answer, keep_articles=keep)
    if not ref:
        raise ValueError(UNUSABLE_REFERENCE)
    if not got:
        return 1, "the answer is empty (nothing left after normalising)"
    if contains(got, ref):
        return 5, f"reference contained in the answer (normalised reference: {' '.join(ref)!r})"
    f1, precision, recall = token_f1(got, ref)
    f1 = round(f1, 2)  # banded on the value the rationale shows, so the two never disagree
    score = next((s for lowest, s in BANDS if f1 >= lowest), 1)
    return score, (
        f"token F1 {f1:.2f} against the reference (precision {precision:.2f}, recall {recall:.2f}); "
        f"bands: >= 0.8 -> 4, >= 0.5 -> 3, >= 0.2 -> 2, else 1"
    )


class ReferenceJudge:
    """The offline judge (see the module docstring); implements ``evals.judge.judging.Judge``."""

    model = MODEL
    offline = True
    max_concurrency = 1  # no I/O: grading is instant, more workers would only add scheduling

    def __init__(self, name: str, rubrics_dir: RubricSearch | Path, rubric: str = "correctness"):
        self.name = name
        self.rubrics = RubricBook(rubrics_dir, rubric)

    def rubric_for(self, item: Item) -> Rubric:
        """The item's rubric: recorded with the run, though the algorithm does not read it."""
        return self.rubrics.for_item(item)

    def cache_key(self, item: Item, answer: str, truncated: bool = False) -> str:
        """Like a frontier judge's key, with the algorithm version in the model's place."""
        return judgment_key(f"{MODEL}/v{ALGORITHM}", self.rubric_for(item), item, answer, truncated=truncated)

    async def grade(self, item: Item, answer: str, *, truncated: bool = False) -> Verdict:
        """The deterministic verdict (``truncated`` is not read); an item without a reference gets an error."""
        if not item.reference or not item.reference.strip():
            return Verdict(score=None, rationale=None, error=NO_REFERENCE)
        if not tokens(item.reference, keep_articles=True):
            return Verdict(score=None, rationale=None, error=UNUSABLE_REFERENCE)
        score, rationale = score_answer(answer, item.reference)
        return Verdict(score=score, rationale=rationale)

    async def aclose(self) -> None:
        """Nothing to release."""

    def describe(self) -> str:
        """``offline (offline-reference), rubric correctness@<hash>``."""
        return f"{self.name} ({self.model}), rubric {self.rubrics.get(self.rubrics.default).label}"
