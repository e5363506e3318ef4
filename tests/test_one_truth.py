"""One truth for every figure (issue 11.1): the run table, the scorecard (JSON, Markdown, HTML), the
history, the index and the gate show the same area mean for a run with samples and errors.

Area ``x``: item ``a`` scored [5, 5, 5], item ``b`` [1, error, error]. The area mean is the mean of the
item means, (5 + 1) / 2 = 3.00, everywhere; the plain mean of the four scores (4.00) appears nowhere.
"""

import html
import json
import re
from collections import Counter
from itertools import count
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, last_user_text
from evals.scorecard import Scorecard
from evals.store import Store

SUITE = [
    {"id": "a", "area": "x", "question": "Question A?", "reference": "alpha"},
    {"id": "b", "area": "x", "question": "Question B?", "reference": "beta"},
]


_B_CALLS = count()


def answer(body):
    """Item a always says alpha; the first of each three answers to b is 'b-first', the other two differ
    from it and from each other (no cached verdict is reused)."""
    question = last_user_text(body)
    if question == "Question A?":
        return "alpha"
    n = next(_B_CALLS)
    return "b-first" if n % 3 == 0 else f"b-other-{n}"


def grade(body):
    """5 for alpha; 1 for b's first answer; an unparseable reply (a judge error) for b's other answers."""
    text = last_user_text(body)
    reply = re.search(r"<answer>(.*?)</answer>", text, re.S).group(1)
    if "alpha" in reply:
        return {"rationale": "right", "score": 5}
    if "b-first" in reply:
        return {"rationale": "wrong", "score": 1}
    return "no verdict today"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with (
        FakeOpenAI(lambda body: answer(body), model_id="qwen-test") as model,
        FakeAnthropic(grade, model_id="claude-test") as judge,
    ):
        config = {
            "models": {"local": {"base_url": model.url, "model": "qwen", "max_concurrency": 1, "max_retries": 0}},
            "judges": {
                "claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test",
                           "max_retries": 0, "max_concurrency": 1},
            },
            "judges_dir": str(Path(__file__).parent.parent / "judges"),
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "suite.jsonl").write_text("".join(json.dumps(i) + "\n" for i in SUITE))
        (tmp_path / "policy.yaml").write_text(
            yaml.safe_dump({"min_pairs": 2, "max_error_rate": 0.5, "floors": {"x": {"mean": 3.5}}})
        )
        monkeypatch.chdir(tmp_path)
        yield tmp_path


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_every_output_shows_the_mean_of_item_means(project):
    runs = []
    for run_id in ("r1", "r2"):
        result = invoke("run", "--suite", "suite.jsonl", "--samples", "3", "--run-id", run_id)
        assert result.exit_code == 0, result.output
        runs.append(result.output)
    reports = project / "reports"
    with Store(reports, readonly=True) as store:
        rows = list(store.results("r2"))
    assert Counter((r.id, r.score) for r in rows) == {("a", 5): 3, ("b", 1): 1, ("b", None): 2}
    assert sum(1 for r in rows if r.error_kind == "judge") == 2

    # the end-of-run table: area x, 2 items, mean 3.00, 2 errors
    assert re.search(r"│ x\s*│\s*2 │\s*3\.00 │\s*2 │", runs[1]), runs[1]

    result = invoke("report", "r2", "--policy", "policy.yaml")
    assert result.exit_code == 0, result.output
    assert re.search(r"│ x \(weak\) │ 2 │\s+3\.00 \[", result.output), result.output  # the report's table
    folder = reports / "runs" / "r2"
    card = Scorecard.model_validate_json((folder / "scorecard.json").read_text())
    assert card.area("x").mean == pytest.approx(3.0) and card.overall.mean == pytest.approx(3.0)
    assert card.history[-1].areas["x"] == pytest.approx(3.0) and card.history[-1].overall == pytest.approx(
        3.0
    )
    assert json.loads((folder / "scorecard.json").read_text())["schema_version"] == card.schema_version
    assert "| x ⚠ weak | 2 | 3.00 [" in (folder / "scorecard.md").read_text()
    page = html.unescape((folder / "scorecard.html").read_text())
    assert re.search(
        r'data-area="x">\s*<td>x.*?</td>\s*<td class="num">2</td>\s*<td class="num">3\.00 ', page, re.S
    )
    assert "<title>3.00</title>" in page  # the history chart's last point

    assert invoke("index").exit_code == 0
    index = (reports / "index.html").read_text()
    assert index.count('<td class="num">3.00 <span class="ci">') == 2  # both runs, overall 3.00

    result = invoke("gate", "--candidate", "r2", "--baseline", "r1", "--policy", "policy.yaml")
    assert "mean 3.00 below floor 3.5" in result.output and result.exit_code == 1, result.output
    for text in (*runs, result.output, (folder / "scorecard.md").read_text(), index, page):
        assert "4.00" not in text  # the plain mean of the scores, which no output may show
