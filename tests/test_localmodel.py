"""The embedded default: the real SmolLM2-135M on llama.cpp answers demo items through `evals demo`."""

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from evals.cli import main
from evals.localmodel import GGUF_NAME, find_gguf

pytestmark = pytest.mark.integration


def test_the_bundled_gguf_is_found_without_importing_its_package():
    path = find_gguf()
    assert path.name == GGUF_NAME and path.stat().st_size > 50_000_000


def test_demo_answers_items_with_the_real_model_and_scores_them_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = Path(__file__).parent.parent
    (tmp_path / "evals.yaml").write_text(f"suites_dir: {root / 'suites'}\njudges_dir: {root / 'judges'}\n")
    result = CliRunner().invoke(main, ["demo", "--limit", "4"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(tmp_path / "reports" / "evals.db")
    answers = db.execute("SELECT text, tokens_out, latency_ms, error FROM answers").fetchall()
    assert len(answers) == 4
    assert all(
        text and tokens > 0 and latency > 0 and error is None for text, tokens, latency, error in answers
    )
    scores = [r[0] for r in db.execute("SELECT score FROM judgments")]
    assert len(scores) == 4 and all(1 <= s <= 5 for s in scores)
    assert db.execute("SELECT judge_model, status FROM runs").fetchone() == ("offline-reference", "finished")
    assert "offline reference judge" in result.output
    assert (tmp_path / "reports" / "index.html").exists()
    assert len(list((tmp_path / "reports" / "runs").glob("*/scorecard.html"))) == 1
