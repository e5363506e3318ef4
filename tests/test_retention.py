"""Retention: `evals purge` removes old runs' text from the store and the exports, keeps what history and
gates need, spares baselines, and leaves purged runs reportable and gateable but not resumable."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.config import GateSettings
from evals.errors import ConfigError
from evals.fakes import FakeOpenAI, text_reply
from evals.render.pages import write_scorecard
from evals.render.purge import purge
from evals.scorecard import build_scorecard
from evals.scorecard.decision import decide
from evals.store.purge import cutoff_of, plan_purge
from evals.store.retention import is_purged

ROOT = Path(__file__).parent.parent
OLD, OLDER = "2026-09-02T00:00:00+00:00", "2026-09-01T00:00:00+00:00"
NOW = datetime(2026, 11, 30, tzinfo=UTC)
BASE = {f"{area}-{i:02d}": [s] for area, s in (("math", 5), ("geo", 4)) for i in range(12)}
SECRET = "patient John Q. Example, MRN 00412"  # text that must not survive a purge anywhere


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def texts(store, run_id):
    """Every text value the store holds for a run, as raw rows (what a purge must clear)."""
    q = store._execute
    return (
        [r[0] for r in q("SELECT item_json FROM items WHERE run_id = ?", (run_id,)).fetchall()]
        + [v for r in q("SELECT text, reasoning FROM answers WHERE run_id = ?", (run_id,)).fetchall() for v in r]
        + [v for r in q("SELECT rationale, raw FROM judgments WHERE run_id = ?", (run_id,)).fetchall() for v in r]
    )  # fmt: skip


def snapshot(store):
    """Every row of every table a purge may touch, to show a dry run changed nothing."""
    return {
        t: sorted(map(repr, store._execute(f"SELECT * FROM {t}").fetchall()))
        for t in ("runs", "items", "answers", "judgments", "run_areas", "baselines")
    }


def old_pair(store):
    """A baseline run and a candidate whose geo area dropped, both ended in September."""
    questions = {k: f"{SECRET} asks {k}" for k in BASE}
    make_run(store, "r01", BASE, started_at=OLDER, questions=questions,
             answers={k: f"{SECRET} answers {k}" for k in BASE})  # fmt: skip
    worse = {k: [2] if k.startswith("geo") else v for k, v in BASE.items()}
    make_run(store, "r02", worse, started_at=OLD, questions=questions,
             answers={k: f"{SECRET} says {k}" for k in BASE})  # fmt: skip


def test_purge_removes_text_from_store_and_exports_and_keeps_scores(open_store, tmp_path):
    with open_store() as store:
        old_pair(store)
        make_run(store, "r03", BASE, started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                 answers={k: f"{SECRET} recent {k}" for k in BASE})  # fmt: skip
        store.export_jsonl("r02")
        write_scorecard(build_scorecard(store, "r02", "r01"), tmp_path / "runs" / "r02")
        results_before = [r.score for r in store.results("r02")]
        aggregates_before = store.aggregates(["r01", "r02"])
        hashes_before = [r.item_hash for r in store.results("r02")]

        plan = plan_purge(store, cutoff_of("30d", NOW), include_baselines=False)
        assert [t.run_id for t in plan.targets] == ["r01", "r02"]  # r03 is recent
        assert plan.rows > 0 and plan.bytes > len(SECRET) * len(BASE)
        done = purge(store, plan, NOW)
        assert [t.run_id for t in done.targets] == ["r01", "r02"]

        for run_id in ("r01", "r02"):
            assert is_purged(store, run_id)
            assert not any(SECRET in (v or "") for v in texts(store, run_id))
        assert not is_purged(store, "r03")
        assert any(SECRET in (v or "") for v in texts(store, "r03"))  # a recent run keeps its text
        rows = list(store.results("r02"))
        assert [r.score for r in rows] == results_before
        assert [r.item_hash for r in rows] == hashes_before  # pairing with a baseline still works
        assert {r.answer for r in rows} == {"(purged)"} and {r.question for r in rows} == {"(purged)"}
        assert {r.rationale for r in rows} == {"(purged)"}
        assert store.aggregates(["r01", "r02"]) == aggregates_before

    folder = tmp_path / "runs" / "r02"
    for name in ("results.jsonl", "manifest.json", "scorecard.json", "scorecard.html", "scorecard.md"):
        assert SECRET not in (folder / name).read_text(), name
    exported = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert [r["score"] for r in exported] == results_before
    html = (folder / "scorecard.html").read_text()
    assert "(purged)" in html and "regressed" in html  # the figures stay, only the text went


def test_gate_on_purged_runs_decides_as_before(open_store):
    with open_store() as store:
        old_pair(store)
        before = decide(store, "r02", "r01", GateSettings())
        purge(store, plan_purge(store, cutoff_of("30d", NOW), include_baselines=True), NOW)
        after = decide(store, "r02", "r01", GateSettings())
    assert before.outcome == "fail"
    assert (after.outcome, after.reasons, after.overall) == (before.outcome, before.reasons, before.overall)


def test_dry_run_changes_nothing_and_lists_what_it_would_purge(open_store, store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALS_STORE", store_url)
    with open_store() as store:
        old_pair(store)
        store.export_jsonl("r01")
        before = snapshot(store)
    exported = (tmp_path / "runs" / "r01" / "results.jsonl").read_text()
    result = invoke("purge", "--older-than", "2026-10-01", "--dry-run", "--reports", tmp_path)
    assert result.exit_code == 0, result.output
    assert "would purge r01" in result.output and "would purge r02" in result.output
    assert "would purge 2 run(s) ended before 2026-10-01T00:00:00+00:00" in result.output
    with open_store() as store:
        assert snapshot(store) == before
    assert (tmp_path / "runs" / "r01" / "results.jsonl").read_text() == exported


def test_baselines_are_kept_unless_included_and_purge_is_idempotent(
    open_store, store_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("EVALS_STORE", store_url)
    with open_store() as store:
        old_pair(store)
        store.set_baseline("prod", "r01", OLD)
    first = invoke("purge", "--older-than", "30d", "--reports", tmp_path)
    assert first.exit_code == 0, first.output
    assert "purged 1 run(s)" in first.output and "kept 1 baseline run(s)" in first.output
    with open_store() as store:
        assert (is_purged(store, "r01"), is_purged(store, "r02")) == (False, True)
    again = invoke("purge", "--older-than", "30d", "--reports", tmp_path)
    assert "purged 0 run(s)" in again.output
    included = invoke("purge", "--older-than", "30d", "--include-baselines", "--reports", tmp_path)
    assert "purged 1 run(s)" in included.output
    with open_store() as store:
        assert is_purged(store, "r01")
        assert not any(SECRET in (v or "") for v in texts(store, "r01"))
    # Each purge that took runs is an audit event; the trail still verifies.
    shown = invoke("audit", "verify", "--reports", tmp_path)
    assert shown.exit_code == 0, shown.output
    with open_store() as store:
        events = store._execute(
            "SELECT details_json FROM audit_records WHERE chain_id = 'events' AND kind = 'purge' ORDER BY seq"
        ).fetchall()
    purges = [e[0] for e in events]
    assert len(purges) == 2 and '"r02"' in purges[0] and '"r01"' in purges[1]


def test_purge_reads_its_age_from_the_config_and_refuses_without_one(tmp_path):
    reports = tmp_path / "reports"
    from evals.store import Store

    with Store(reports) as store:
        old_pair(store)
    refused = CliRunner().invoke(main, ["purge", "--reports", str(reports)])
    assert refused.exit_code == 2
    assert "--older-than" in refused.output and "text_days" in refused.output
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump({"retention": {"text_days": 30}}))
    done = invoke("purge", "--reports", reports)
    assert "purged 2 run(s)" in done.output
    with Store(reports) as store:
        make_run(store, "r03", BASE, started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    assert "purged 0 run(s)" in invoke("purge", "--reports", reports).output  # too recent for text_days
    assert "purged 1 run(s) named with --run" in invoke("purge", "--run", "r03", "--reports", reports).output
    bad = CliRunner().invoke(main, ["purge", "--older-than", "soon", "--reports", str(reports)])
    assert bad.exit_code == 2 and "expected a duration (30d, 12h, 2w) or a date" in bad.output


def test_retention_settings_are_validated(tmp_path):
    (tmp_path / "evals.yaml").write_text("retention:\n  text_days: 0\n")
    result = CliRunner().invoke(main, ["purge", "--dry-run"])
    assert result.exit_code == 2
    assert "evals.yaml:2" in result.output and "text_days" in result.output


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30d", NOW - timedelta(days=30)), ("12h", NOW - timedelta(hours=12)), ("2w", NOW - timedelta(weeks=2)),
     ("2026-10-31", datetime(2026, 10, 31, tzinfo=UTC)),
     ("2026-10-31T12:00:00+02:00", datetime(2026, 10, 31, 10, tzinfo=UTC))],
)  # fmt: skip
def test_older_than_takes_durations_and_dates(value, expected):
    assert cutoff_of(value, NOW) == expected


def test_older_than_rejects_anything_else():
    with pytest.raises(ConfigError, match="'3 months'"):
        cutoff_of("3 months", NOW)


def test_a_purged_run_reports_and_indexes_but_refuses_to_resume(tmp_path):
    suite = [{"id": f"q{i}", "area": f"a{i % 2}", "question": f"{SECRET} {i}?", "reference": str(i)}
             for i in range(6)]  # fmt: skip
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(s) + "\n" for s in suite))
    with FakeOpenAI(text_reply(lambda q: q.split()[-1].rstrip("?"))) as model:
        config = {
            "models": {"local": {"base_url": model.url, "model": "m"}},
            "judges_dir": str(ROOT / "judges"),
        }
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        assert invoke("run", "--suite", "suite.jsonl", "--run-id", "old").exit_code == 0
        assert invoke("report", "old").exit_code == 0
        purged = invoke("purge", "--run", "old")
        assert "purged 1 run(s) named with --run" in purged.output
        resumed = CliRunner().invoke(main, ["run", "--resume", "old"])
    assert resumed.exit_code == 2
    assert "was purged" in resumed.output and "not resumed" in resumed.output
    report = invoke("report", "old")
    assert report.exit_code == 0, report.output
    assert "overall mean 5.00" in report.output
    assert invoke("index").exit_code == 0
    for path in (tmp_path / "reports").rglob("*"):
        if path.is_file() and path.suffix in (".html", ".md", ".json", ".jsonl"):
            assert SECRET not in path.read_text(), path


def test_nightly_purges_with_the_configured_retention(tmp_path):
    from evals.store import Store

    with Store(tmp_path / "reports") as store:
        old_pair(store)
    (tmp_path / "suites").mkdir()
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump({"retention": {"text_days": 30}}))
    env = {**os.environ, "EVALS": str(Path(sys.executable).parent / "evals"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [str(ROOT / "scripts" / "nightly.sh"), "suites"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "purged 2 run(s)" in done.stdout
    with Store(tmp_path / "reports") as store:
        assert is_purged(store, "r01") and is_purged(store, "r02")


def test_a_purged_run_copied_or_imported_still_pairs_with_its_baseline(tmp_path):
    from evals.store import Store
    from evals.store.transfer import copy_store, import_runs

    with Store(tmp_path / "a") as source:
        old_pair(source)
        before = decide(source, "r02", "r01", GateSettings())
        purge(source, plan_purge(source, None, runs=("r02",)), NOW)  # the baseline keeps its text
        source.export_jsonl("r01")
        source.export_jsonl("r02")
        with Store(tmp_path / "b") as copied:
            copy_store(source, copied)
            assert decide(copied, "r02", "r01", GateSettings()).overall == before.overall
            assert is_purged(copied, "r02") and not is_purged(copied, "r01")  # no resume there either
    with Store(tmp_path / "c") as imported:
        import_runs(tmp_path / "a" / "runs", imported)
        assert decide(imported, "r02", "r01", GateSettings()).overall == before.overall
        assert is_purged(imported, "r02")


def test_the_judgment_cache_prefers_a_verdict_whose_reasons_are_kept(open_store):
    with open_store() as store:
        make_run(store, "r01", {"math-00": [5]}, started_at=OLDER)
        make_run(store, "r02", {"math-00": [5]}, started_at=OLD)
        # the same answer judged in both runs: one cache key
        store._execute("UPDATE judgments SET cache_key = 'k'")
        store._execute("UPDATE judgments SET rationale = 'kept reasons' WHERE run_id = 'r02'")
        purge(store, plan_purge(store, None, runs=("r01",)), NOW)
        cached = store.cached_judgment("k")
    assert cached is not None and cached.rationale == "kept reasons"
