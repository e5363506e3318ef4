"""The offline reference judge: each score band, normalisation, determinism, and items it cannot grade."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from evals.judge import reference as reference_judge
from evals.judge.reference import NO_REFERENCE, ReferenceJudge, score_answer, tokens
from evals.judge.rubrics import load_rubric
from evals.records import Item, Verdict

JUDGES = Path(__file__).parent.parent / "judges"


def grade(answer: str, reference: str | None, judge: ReferenceJudge | None = None) -> Verdict:
    judge = judge or ReferenceJudge("offline", JUDGES)
    item = Item(id="i", area="a", question="q?", reference=reference)
    return asyncio.run(judge.grade(item, answer))


def f1_shown(verdict: Verdict) -> float:
    match = re.search(r"token F1 (\d\.\d\d) against the reference", verdict.rationale or "")
    assert match, verdict.rationale
    return float(match.group(1))


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("The capital of France is Paris.", "Paris"),  # contained, with harmless extra words
        ("paris", "Paris!"),  # equal after normalising
        ("It was signed as the Treaty of Versailles.", "Treaty of Versailles"),
        ("The answer is A.", "A"),  # a multiple-choice letter is not dropped as an article
    ],
)
def test_reference_contained_in_the_answer_scores_5(answer, reference):
    verdict = grade(answer, reference)
    assert verdict.score == 5 and verdict.error is None
    assert "reference contained in the answer" in (verdict.rationale or "")


def test_containment_is_by_whole_tokens_in_order():
    assert grade("Parisian cafes", "Paris").score == 1  # not a substring match
    assert grade("Versailles of Treaty", "Treaty of Versailles").score != 5  # not in order


@pytest.mark.parametrize(
    ("answer", "reference", "score", "f1"),
    [
        # 4 shared of 5 answer tokens, all 4 reference tokens: P 0.8, R 1.0
        ("treaty of versailles in 1919", "The Treaty of Versailles, 1919", 4, 0.89),
        # P 0.8, R 0.8: exactly on the 0.8 boundary (rounded as shown), still a 4
        ("red blood cells carry oxygen", "red blood cells transport oxygen", 4, 0.8),
        # 1 of 3 reference tokens, nothing extra: P 1.0, R 0.33
        ("chloroplasts", "mitochondria and chloroplasts", 3, 0.5),
        # one shared token in five on each side
        ("sound travels slower than light", "the speed of light in vacuum", 2, 0.2),
        ("Quito", "Lima", 1, 0.0),
        # one shared token of 2 against 9 answer tokens: P 0.11, R 0.5
        ("it is found in many parts of south america", "north america", 1, 0.18),
    ],
)
def test_token_f1_bands(answer, reference, score, f1):
    verdict = grade(answer, reference)
    assert verdict.score == score
    assert f1_shown(verdict) == f1


def test_empty_answers_score_1():
    for answer in ("", "   ", "...!", "The."):
        verdict = grade(answer, "Paris")
        assert verdict.score == 1 and "empty" in (verdict.rationale or ""), answer


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("About 1000 people.", "1,000"),
        ("1,000,000", "1000000"),
        ("It is 12.0 meters.", "12 meters"),
        ("3.50", "3.5"),
        ("seven", "7"),
        ("There are 3.", "three"),
        ("twenty", "20"),
        ("It froze at -3 degrees", "-3 degrees"),
        ("Ｐａｒｉｓ", "Paris"),  # NFKC folds full-width letters
    ],
)
def test_numbers_and_forms_are_normalised(answer, reference):
    assert grade(answer, reference).score == 5


def test_number_normalisation_keeps_different_values_apart():
    assert tokens("1,2,3") == ["1", "2", "3"]  # a list, not one thousand-something
    assert tokens("1990-2000") == ["1990", "2000"]
    assert grade("12.5", "12").score == 1
    assert grade("1000", "100").score == 1


def test_verdicts_are_deterministic():
    cases = [("Paris, I think", "Paris"), ("treaty of versailles in 1919", "Treaty of Versailles 1919")]
    first = [grade(a, r) for a, r in cases]
    again = [grade(a, r, ReferenceJudge("offline", JUDGES)) for a, r in cases]
    assert first == again
    assert all(v.tokens_in is None and v.latency_ms is None for v in first)  # nothing was called


def test_an_item_without_reference_is_an_error_not_a_score():
    verdict = grade("Paris", None)
    assert verdict.score is None and verdict.error == NO_REFERENCE
    verdict = grade("Paris", "  ")
    assert verdict.score is None and verdict.error == NO_REFERENCE
    verdict = grade("Paris", "—")
    assert verdict.score is None and "no words or numbers" in (verdict.error or "")


def test_score_answer_rejects_a_reference_with_nothing_to_compare():
    with pytest.raises(ValueError):
        score_answer("Paris", "?!")


def test_it_is_a_judge():
    judge = ReferenceJudge("offline", JUDGES)
    item = Item(id="i", area="a", question="Capital of France?", reference="Paris")
    rubric = load_rubric("correctness", JUDGES)
    assert (judge.name, judge.model, judge.offline) == ("offline", "offline-reference", True)
    assert judge.rubric_for(item).hash == rubric.hash
    assert judge.describe() == f"offline (offline-reference), rubric correctness@{rubric.hash}"
    assert judge.cache_key(item, "Paris") == judge.cache_key(item, "Paris")
    assert judge.cache_key(item, "Paris") != judge.cache_key(item, "Lyon")
    asyncio.run(judge.aclose())


def test_cache_key_changes_when_the_algorithm_does(monkeypatch):
    judge = ReferenceJudge("offline", JUDGES)
    item = Item(id="i", area="a", question="q?", reference="Paris")
    key = judge.cache_key(item, "Paris")
    monkeypatch.setattr(reference_judge, "ALGORITHM", reference_judge.ALGORITHM + 1)
    assert judge.cache_key(item, "Paris") != key


def test_the_docstring_states_the_bands_the_code_uses():
    doc = reference_judge.__doc__ or ""
    assert "4 from 0.8, 3 from 0.5, 2 from 0.2" in doc
    assert reference_judge.BANDS == ((0.8, 4), (0.5, 3), (0.2, 2))
    assert "Known limits" in doc and "many candidates" in doc
