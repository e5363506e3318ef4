"""``evals audit verify`` covers what the trail claims: runs made on the fake servers, then the trail cut the
ways a chain alone cannot show (the newest chain deleted with its head, the audit tables emptied, one run's
chain gone, a chain shortened and sealed again) is found through the runs' own answers and verdicts; runs
brought by ``evals import`` / ``evals store copy`` and runs older than the trail are listed, not failed; an
anchor holds only at one of the run's sealed heads. Both store backends."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, grade_by_reference, text_reply
from evals.outbound import audit
from evals.store import Store, postgres, sqlite
from evals.store import audit as sql

SUITE = [
    {"id": "geo-1", "area": "geography", "question": "Capital of France?", "reference": "Paris"},
    {"id": "geo-2", "area": "geography", "question": "Capital of Peru?", "reference": "Lima"},
    {"id": "math-1", "area": "math", "question": "What is 2 + 2?", "reference": "4"},
]
ANSWERS = {"Capital of France?": "Paris.", "Capital of Peru?": "Quito.", "What is 2 + 2?": "4"}
HEAD_LINE = re.compile(r"audit head: ([0-9a-f]{64}) \((\d+) records?\)")


def invoke(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def servers():
    with (
        FakeOpenAI(text_reply(lambda q: ANSWERS.get(q, "?")), model_id="qwen-test") as model,
        FakeAnthropic(grade_by_reference, model_id="claude-test") as judge,
    ):
        yield model, judge


@pytest.fixture
def project(tmp_path, servers, store_url, monkeypatch):
    """evals.yaml with the fakes, the store parametrised (the CLI's, through EVALS_STORE)."""
    model, judge = servers
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("EVALS_STORE", store_url)
    config = {
        "models": {"local": {"base_url": model.url, "model": "qwen", "max_concurrency": 2, "max_retries": 0}},
        "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test",
                              "max_retries": 0, "max_concurrency": 2}},
        "judges_dir": str(Path(__file__).parent.parent / "judges"),
    }  # fmt: skip
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    return tmp_path


def run_once(*extra: str) -> tuple[str, str]:
    """Run the suite; (run id, the head it printed)."""
    result = invoke("run", "--suite", "suite.jsonl", "--model", "local", "--judge", "claude", *extra)
    assert result.exit_code == 0, result.output
    run_id, head = re.search(r"run id: (\S+)", result.output), HEAD_LINE.search(result.output)
    assert run_id and head, result.output
    return run_id.group(1), head.group(1)


def verify_cli(*args: str) -> tuple[int, str]:
    result = invoke("audit", "verify", *args)
    return result.exit_code, result.output


def tampered(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("TAMPERED: ")]


def delete_chain(store_url: str, project: Path, run_id: str, head_too: bool = True) -> None:
    with Store(project, url=store_url) as store:
        store._execute("DELETE FROM audit_records WHERE chain_id = ?", (run_id,))
        if head_too:
            store._execute("DELETE FROM audit_heads WHERE chain_id = ?", (run_id,))


# ---------------------------------------------------------------------------------- deleted whole


def test_the_newest_chain_deleted_with_its_head_is_found_through_the_runs_answers(project, store_url):
    first, _ = run_once()
    newest, _ = run_once()
    assert verify_cli()[0] == 0
    delete_chain(store_url, project, newest)
    code, output = verify_cli()
    assert code == 1, output
    # The heads chain alone still verifies (its newest entry went): only the run's answers tell (its verdicts
    # were reused from the first run's: no call, nothing to cover).
    assert tampered(output) == [
        f"TAMPERED: run {newest}: missing: 3 answer(s) came back from calls made in this "
        "store, but the run has no audit chain and no head (its records and heads were deleted, or never "
        "stored); restore the audit tables from a backup of the store and compare"
    ]
    assert first not in "\n".join(tampered(output))
    code, output = verify_cli("--run", newest)  # one run: a decided no, not "cannot check"
    assert code == 1 and f"TAMPERED: run {newest}: missing" in output
    assert verify_cli("--run", first)[0] == 0


def test_emptied_audit_tables_are_found(project, store_url):
    runs = sorted(run_once()[0] for _ in range(2))
    with Store(project, url=store_url) as store:
        store._execute("DELETE FROM audit_records")
        store._execute("DELETE FROM audit_heads")
    code, output = verify_cli()
    assert code == 1, output
    lines = tampered(output)
    assert [line.split(":")[1].strip() for line in lines[:2]] == [f"run {r}" for r in runs]
    assert lines[2] == (
        "TAMPERED: store: missing: the audit tables hold no record and no head, yet 2 run(s) made calls in "
        "this store since its trail began; restore audit_records and audit_heads from a backup of the store"
    )
    assert "audit trail NOT intact: 3 problem(s); 0 records in 0 chain(s), 0 head(s)" in output


def test_one_runs_chain_deleted_is_named_with_the_run(project, store_url):
    older, _ = run_once()
    newer, _ = run_once()
    delete_chain(store_url, project, older)
    code, output = verify_cli()
    assert code == 1
    assert "TAMPERED: chain (heads) record 0: missing: the heads chain jumps from -1 to 1" in output
    assert f"TAMPERED: run {older}: missing: 3 answer(s) and 3 verdict(s) came back from calls" in output
    assert newer not in "\n".join(tampered(output))


def test_a_run_whose_calls_were_never_recorded_is_missing(project, store_url):
    """A run made since the trail began, with answers and verdicts from calls but no record of them."""
    run_once()
    with Store(project, url=store_url) as store:
        make_run(store, "r01", {"geo-1": [4], "geo-2": [5]}, started_at=datetime.now(UTC).isoformat())
    code, output = verify_cli()
    assert code == 1
    assert tampered(output) == [
        "TAMPERED: run r01: missing: 2 answer(s) and 2 verdict(s) came back from calls made in this store, "
        "but the run has no audit chain and no head (its records and heads were deleted, or never stored); "
        "restore the audit tables from a backup of the store and compare"
    ]


def test_a_chain_shortened_and_sealed_again_falls_short_of_the_runs_answers_and_verdicts(project, store_url):
    run_id, printed = run_once()
    with Store(project, url=store_url) as store:
        rows = list(sql.records(store, run_id))
        kept = rows[:-2]  # the last two calls (the last is a judge's: it graded the last answer)...
        store._execute("DELETE FROM audit_records WHERE chain_id = ? AND seq >= ?", (run_id, len(kept)))
        store._execute("DELETE FROM audit_heads WHERE chain_id = ?", (run_id,))
        audit.seal(store, run_id)  # ...removed, and the chain sealed again: chains and heads agree
    left = {role: sum(r.role == role for r in kept) for role in ("model", "judge")}
    expected = [
        f"TAMPERED: run {run_id}: missing: 3 {noun}(s) came back from {role} calls, its chain records "
        f"{left[role]} successful {role} call(s) (records removed and the chain sealed again); restore the "
        "audit tables from a backup of the store and compare, and verify with the 'audit head' the run "
        "printed (--anchor)"
        for role, noun in (("model", "answer"), ("judge", "verdict"))
        if left[role] < 3
    ]
    code, output = verify_cli()
    assert code == 1 and left["judge"] < 3
    assert tampered(output) == expected
    code, output = verify_cli("--anchor", f"{run_id}={printed}")
    assert code == 1 and f"anchor {printed} does not match any record of the chain" in output


@pytest.mark.parametrize("status", ["running", "interrupted"])
def test_a_killed_runs_unsealed_tail_cut_off_falls_short_of_its_results(project, store_url, status):
    """A run killed before its seal (``kill -9``: still ``running``, no head), then the end of its chain
    deleted: no head counts the records, but its verdicts still need their judge calls."""
    run_id, _ = run_once()
    with Store(project, url=store_url) as store:
        store._execute("UPDATE runs SET status = ?, ended_at = NULL WHERE run_id = ?", (status, run_id))
        store._execute("DELETE FROM audit_heads WHERE chain_id = ?", (run_id,))
        assert verify_cli()[0] == 0  # killed: its unsealed records are a note, nothing is missing
        kept = list(sql.records(store, run_id))[:-2]
        store._execute("DELETE FROM audit_records WHERE chain_id = ? AND seq >= ?", (run_id, len(kept)))
    left = {role: sum(r.role == role for r in kept) for role in ("model", "judge")}
    code, output = verify_cli()
    assert code == 1 and left["judge"] < 3, output
    assert tampered(output) == [
        f"TAMPERED: run {run_id}: missing: 3 {noun}(s) came back from {role} calls, its chain records "
        f"{left[role]} successful {role} call(s) (records removed from its end, which no head had sealed "
        "yet); restore the audit tables from a backup of the store and compare, and verify with the 'audit "
        "head' the run printed (--anchor)"
        for role, noun in (("model", "answer"), ("judge", "verdict"))
        if left[role] < 3
    ]


def test_a_rerun_answers_for_its_verdicts_only(project, store_url):
    """A rerun's answers are copied (no model call); its fresh verdicts are each on its chain."""
    source, _ = run_once()
    result = invoke("judge", "rerun", source, "--repeats", "2", "--run-id", "rerun-1")
    assert result.exit_code == 0, result.output
    assert verify_cli()[0] == 0
    with Store(project, url=store_url) as store:
        [calls] = sql.run_calls(store, "rerun-1")
        assert (calls.answers, calls.verdicts) == (0, 6)
        judged = [r for r in sql.records(store, "rerun-1") if r.role == "judge"]
        store._execute(
            "DELETE FROM audit_records WHERE chain_id = ? AND seq >= ?", ("rerun-1", judged[-1].seq)
        )
        store._execute("DELETE FROM audit_heads WHERE chain_id = ?", ("rerun-1",))
        audit.seal(store, "rerun-1")
    code, output = verify_cli()
    assert code == 1
    assert (
        "TAMPERED: run rerun-1: missing: 6 verdict(s) came back from judge calls, its chain records 5"
        in output
    )


# ------------------------------------------------------------------------------ listed, not failed


def test_imported_and_copied_runs_are_listed_as_such(tmp_path, project, store_url, monkeypatch):
    source = tmp_path / "elsewhere" / "evals.db"
    source.parent.mkdir()
    monkeypatch.setenv("EVALS_STORE", str(source))
    exported, _ = run_once()
    copied, _ = run_once()
    monkeypatch.setenv("EVALS_STORE", store_url)
    folder = project / "reports" / "runs" / exported
    assert invoke("import", folder).exit_code == 0
    result = invoke("store", "copy", source, store_url)
    assert result.exit_code == 0, result.output
    code, output = verify_cli()
    assert code == 0, output
    assert f"note: run {exported}: imported (evals import from {folder.resolve()}, " in output
    assert f"note: run {copied}: imported (evals store copy from {source}, " in output
    assert "audit trail intact: 0 records in 0 chain(s), 0 head(s); 2 run(s) imported" in output
    assert verify_cli("--run", exported)[0] == 0
    # The source keeps the trail of both.
    monkeypatch.setenv("EVALS_STORE", str(source))
    code, output = verify_cli()
    assert code == 0 and "in 2 chain(s), 2 head(s)" in output and "imported" not in output


def test_an_imported_run_resumed_here_gets_its_own_chain(tmp_path, project, store_url, monkeypatch, servers):
    """Imported half done (the judge failing), judged here: its new calls are on this store's trail."""
    _, judge = servers
    source = tmp_path / "elsewhere" / "evals.db"
    source.parent.mkdir()
    monkeypatch.setenv("EVALS_STORE", str(source))
    judge.inject(*[Fault("server_error", status=401)] * 3)
    result = invoke(
        "run", "--suite", "suite.jsonl", "--model", "local", "--judge", "claude", "--fail-after", "1"
    )
    assert result.exit_code == 2, result.output
    run_id = re.search(r"evals run --resume (\S+)", result.output)
    assert run_id, result.output
    judge.clear()
    monkeypatch.setenv("EVALS_STORE", store_url)
    assert invoke("import", project / "reports" / "runs" / run_id.group(1)).exit_code == 0
    assert invoke("run", "--resume", run_id.group(1)).exit_code == 0
    code, output = verify_cli()
    assert code == 0, output
    assert "1 chain(s), 1 head(s)" in output and "imported" not in output


def store_without(monkeypatch, *steps: str) -> None:
    """Open stores as a version without ``steps`` did."""
    monkeypatch.setattr(
        sqlite, "SQLITE_MIGRATIONS", [m for m in sqlite.SQLITE_MIGRATIONS if m.__name__ not in steps]
    )
    monkeypatch.setattr(
        postgres, "POSTGRES_MIGRATIONS", [m for m in postgres.POSTGRES_MIGRATIONS if m[0] not in steps]
    )


def test_a_run_older_than_the_trail_is_listed_as_such(project, store_url, monkeypatch):
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="seconds")
    with monkeypatch.context() as old_version:
        store_without(old_version, "_m008_audit", "_m017_audit_imports")
        with Store(project, url=store_url) as store:
            assert not store._execute("SELECT 1 FROM _migrations WHERE name = '_m008_audit'").fetchall()
            make_run(store, "r01", {"geo-1": [4], "geo-2": [5]}, started_at=two_days_ago)
    with Store(project, url=store_url) as store:  # upgraded: the trail begins now
        assert sql.trail_began(store) > datetime.now(UTC) - timedelta(minutes=1)
    made_since, _ = run_once()
    code, output = verify_cli()
    assert code == 0, output
    assert (
        f"note: run r01: before the audit trail (started {two_days_ago}; the store's trail began " in output
    )
    assert "1 run(s) before the audit trail" in output
    delete_chain(store_url, project, made_since)  # being older excuses that run only
    code, output = verify_cli()
    assert code == 1  # (its chain was the only one: the tables are empty too)
    assert [line.split(":")[1] for line in tampered(output)] == [f" run {made_since}", " store"]


def test_a_run_without_a_chain_when_imports_began_to_be_marked_is_listed_with_its_doubt(
    project, store_url, monkeypatch
):
    with monkeypatch.context() as old_version:
        store_without(old_version, "_m017_audit_imports")
        with Store(project, url=store_url) as store:
            make_run(store, "r01", {"geo-1": [4]}, started_at=datetime.now(UTC).isoformat())
    code, output = verify_cli()
    assert code == 0, output
    assert (
        "note: run r01: no chain, and already in the store when it began to mark imports (" in output
        and "imported before then, or its chain deleted before then; compare with the store it came from or "
        "a backup"
        in output
    )
    assert "1 run(s) imported" in output


def test_a_run_that_made_no_call_needs_no_chain(project, store_url):
    with Store(project, url=store_url) as store:
        make_run(store, "r01", {"geo-1": [4]}, started_at=datetime.now(UTC).isoformat())
        store._execute("UPDATE answers SET latency_ms = NULL")  # failed before any reply
        store._execute("UPDATE judgments SET latency_ms = NULL")  # the offline judge
    code, output = verify_cli()
    assert code == 0 and "note:" not in output, output


# ------------------------------------------------------------------------------------------ anchors


def test_an_anchor_holds_only_at_one_of_the_runs_sealed_heads(project, store_url, servers):
    model, _ = servers
    model.inject(*[Fault("server_error", status=401)] * 2)  # a refused key: the run stops, sealed
    result = invoke(
        "run", "--suite", "suite.jsonl", "--model", "local", "--judge", "claude", "--fail-after", "1"
    )
    assert result.exit_code == 2, result.output
    run_id = re.search(r"evals run --resume (\S+)", result.output)
    assert run_id, result.output
    run = run_id.group(1)
    model.clear()
    resumed = invoke("run", "--resume", run)
    assert resumed.exit_code == 0, resumed.output
    printed = HEAD_LINE.search(resumed.output)
    assert printed, resumed.output
    with Store(project, url=store_url) as store:
        heads = [h for h in sql.heads(store) if h.chain_id == run]
        rows = list(sql.records(store, run))
    assert len(heads) == 2 and heads[-1].head_hash == printed.group(1)  # each end sealed once
    older = heads[0]
    inside = next(r for r in rows if r.hash not in {h.head_hash for h in heads})
    made_up = hashlib.sha256(b"no such head").hexdigest()
    assert verify_cli("--anchor", f"{run}={printed.group(1)}")[0] == 0
    assert verify_cli("--anchor", f"{run}={older.head_hash}", "--run", run)[0] == 0
    code, output = verify_cli("--anchor", f"{run}={inside.hash}")
    assert code == 1
    assert (
        f"TAMPERED: chain {run}: anchor {inside.hash} is the hash of record {inside.seq}, not one of the "
        "chain's sealed heads" in output
    )
    code, output = verify_cli("--anchor", f"{run}={made_up}")
    assert code == 1
    assert f"TAMPERED: chain {run}: anchor {made_up} does not match any record of the chain" in output


def test_an_anchor_at_another_runs_head_or_at_a_heads_chain_entry_is_refused(project, store_url):
    first, first_head = run_once()
    second, second_head = run_once()
    with Store(project, url=store_url) as store:
        entry = next(h for h in sql.heads(store) if h.chain_id == first)  # the heads chain's own hash
    for anchor in (second_head, entry.hash):
        code, output = verify_cli("--anchor", f"{first}={anchor}")
        assert code == 1, output
        assert f"TAMPERED: chain {first}: anchor {anchor} does not match any record of the chain" in output
    assert verify_cli("--anchor", f"{first}={first_head}", "--anchor", f"{second}={second_head}")[0] == 0
    code, output = verify_cli("--anchor", f"{first}-gone={first_head}")  # a run the store no longer has
    assert code == 1 and f"TAMPERED: chain {first}-gone: anchor given, but the chain has no records" in output


def test_a_run_prints_its_sealed_head_and_says_when_records_follow_it(open_store):
    with open_store() as store:
        for _ in range(2):
            audit.append(store, "run-x", audit.Entry(kind=audit.CALL, at=audit.now()))
        sealed = audit.seal(store, "run-x")
        assert sealed is not None
        assert audit.audit_line(store, "run-x") == f"audit head: {sealed.head_hash} (2 records)"
        audit.append(store, "run-x", audit.Entry(kind=audit.CALL, at=audit.now()))  # a seal that failed
        assert audit.audit_line(store, "run-x") == (
            f"audit head: {sealed.head_hash} (2 records); 1 later record(s) not sealed"
        )
        audit.append(store, "run-y", audit.Entry(kind=audit.CALL, at=audit.now()))
        assert audit.audit_line(store, "run-y") == "audit head: none sealed (1 record not sealed)"
