"""The audit trail: a run on the fake servers records every call (retries too) with the SHA-256 of the exact
body the server received; ``evals audit verify`` finds an altered, a removed and a consistently rewritten
record; ``evals audit show`` lists an item's calls; no key reaches the trail. Both store backends."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.config import Endpoint
from evals.fakes import FakeAnthropic, FakeOpenAI, Fault, grade_by_reference, text_reply
from evals.outbound import audit
from evals.outbound.audit_verify import verify
from evals.outbound.callcontext import calling
from evals.outbound.providers import build_provider
from evals.records import CompletionRequest
from evals.store import Store
from evals.store import audit as sql

SECRET = "sk-ant-test-SECRET-7373"
OPENAI_SECRET = "sk-local-test-SECRET-9191"
URL_PASSWORD = "pw-in-url-SECRET-5555"
SUITE = [
    {"id": "geo-1", "area": "geography", "question": "Capital of France?", "reference": "Paris"},
    {"id": "geo-2", "area": "geography", "question": "Capital of Peru?", "reference": "Lima"},
    {"id": "math-1", "area": "math", "question": "What is 2 + 2?", "reference": "4"},
]
ANSWERS = {"Capital of France?": "Paris.", "Capital of Peru?": "Quito.", "What is 2 + 2?": "4"}
HEAD_LINE = re.compile(r"audit head: ([0-9a-f]{64}) \((\d+) records?\)")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def servers():
    with (
        FakeOpenAI(text_reply(lambda q: ANSWERS.get(q, "?")), model_id="qwen-test") as model,
        FakeAnthropic(grade_by_reference, model_id="claude-test") as judge,
    ):
        yield model, judge


@pytest.fixture
def project(tmp_path, servers, store_url, monkeypatch):
    """evals.yaml with the fakes (the model's URL carrying credentials), keys set, the store parametrised."""
    model, judge = servers
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("LOCAL_KEY", OPENAI_SECRET)
    monkeypatch.setenv("EVALS_STORE", store_url)
    model_url = model.url.replace("http://", f"http://auditor:{URL_PASSWORD}@")
    config = {
        "models": {"local": {"base_url": model_url, "model": "qwen", "api_key_env": "LOCAL_KEY",
                             "max_concurrency": 2, "max_retries": 2}},
        "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test",
                              "max_retries": 1, "max_concurrency": 2}},
        "judges_dir": str(Path(__file__).parent.parent / "judges"),
    }  # fmt: skip
    (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SUITE))
    return tmp_path


def run_once(project: Path) -> tuple[str, str, int]:
    """Run the suite; (run id, printed head hash, printed record count)."""
    result = invoke("run", "--suite", "suite.jsonl", "--model", "local", "--judge", "claude")
    assert result.exit_code == 0, result.output
    run_id = re.search(r"run id: (\S+)", result.output)
    head = HEAD_LINE.search(result.output)
    assert run_id and head, result.output
    return run_id.group(1), head.group(1), int(head.group(2))


def all_records(store_url: str, tmp_path: Path) -> list[sql.RecordRow]:
    with Store(tmp_path, url=store_url) as store:
        return list(sql.records(store))


def test_a_run_records_every_call_with_the_hash_of_the_body_the_server_received(project, servers, store_url):
    model, judge = servers
    model.inject(Fault("server_error"))  # the first model call fails once: its retry is a call too
    run_id, printed, count = run_once(project)
    rows = all_records(store_url, project)
    assert {r.chain_id for r in rows} == {run_id}
    assert [r.seq for r in rows] == list(range(len(rows)))
    # Every request either server received is one record, and its sha256 is of exactly those bytes.
    received = sorted(hashlib.sha256(b).hexdigest() for b in model.raw_requests + judge.raw_requests)
    assert len(received) == len(SUITE) * 2 + 1
    assert sorted(r.sha256 for r in rows) == received
    calls = [(r.role, r.endpoint, r.model, r.status, r.attempt) for r in rows]
    assert calls.count(("model", "local", "qwen", "500", 1)) == 1
    assert calls.count(("model", "local", "qwen", "ok", 2)) == 1
    assert calls.count(("model", "local", "qwen", "ok", 1)) == len(SUITE) - 1
    assert calls.count(("judge", "claude", "claude-test", "ok", 1)) == len(SUITE)
    assert {r.item_id for r in rows} == {item["id"] for item in SUITE}
    assert {r.url for r in rows} == {f"{model.url}/chat/completions", f"{judge.url}/v1/messages"}
    # The printed head is the chain's last hash and count, and the heads chain sealed it.
    assert (printed, count) == (rows[-1].hash, len(rows))
    with Store(project, url=store_url) as store:
        sealed = sql.last_head(store, run_id)
    assert sealed is not None and (sealed.head_hash, sealed.count) == (printed, count)
    verified = invoke("audit", "verify", "--anchor", f"{run_id}={printed}")
    assert verified.exit_code == 0, verified.output
    assert f"audit trail intact: {count} records in 1 chain(s), 1 head(s)" in verified.output


def test_the_scorecard_carries_the_head_the_run_printed(project):
    run_id, printed, count = run_once(project)
    result = invoke("report", run_id)
    assert result.exit_code == 0, result.output
    folder = project / "reports" / "runs" / run_id
    card = json.loads((folder / "scorecard.json").read_text())
    assert card["audit"] == {"hash": printed, "records": count}
    assert printed in (folder / "scorecard.html").read_text()
    assert printed in (folder / "scorecard.md").read_text()


def test_no_key_or_url_password_reaches_the_trail(project, store_url):
    run_once(project)
    with Store(project, url=store_url) as store:
        dump = repr(store._execute("SELECT * FROM audit_records").fetchall())
        dump += repr(store._execute("SELECT * FROM audit_heads").fetchall())
    for secret in (SECRET, OPENAI_SECRET, URL_PASSWORD, "auditor"):
        assert secret not in dump
    assert "127.0.0.1" in dump  # the URLs are there, without their credentials


def test_the_offline_judge_makes_and_records_no_call(project, store_url):
    result = invoke("run", "--suite", "suite.jsonl", "--model", "local", "--judge", "offline")
    assert result.exit_code == 0, result.output
    rows = all_records(store_url, project)
    assert [r.role for r in rows] == ["model"] * len(SUITE)


def test_show_lists_an_items_calls_in_the_order_sent(project, servers):
    model, _ = servers
    model.inject(Fault("server_error"))
    run_id, _, _ = run_once(project)
    shown = invoke("audit", "show", "--item", "geo-2", "--run", run_id, "--format", "json")
    assert shown.exit_code == 0, shown.output
    lines = [json.loads(line) for line in shown.output.splitlines()]
    assert lines and {c["item_id"] for c in lines} == {"geo-2"}
    assert [c["role"] for c in lines][-1] == "judge"  # the judge saw the answer after the model gave it
    assert all(len(c["sha256"]) == 64 and c["run_id"] == run_id for c in lines)
    text = invoke("audit", "show", "--item", "geo-2")
    assert text.exit_code == 0
    assert text.output.count("\n") == len(lines) and "judge -> claude (claude-test)" in text.output
    assert "no recorded calls for item nope" in invoke("audit", "show", "--item", "nope").output


# ------------------------------------------------------------------------------------------ tampering


def make_chain(store: Store, chain: str, n: int = 6) -> None:
    """``n`` call records in ``chain``, then its head."""
    for i in range(n):
        entry = audit.Entry(
            kind=audit.CALL, at=f"2026-11-30T18:00:0{i}.000000+00:00", run_id=chain, item_id=f"q{i % 2}",
            sample=0, role="model" if i % 2 == 0 else "judge", endpoint="local", url="http://h/v1/chat/completions",
            model="m", sha256=hashlib.sha256(str(i).encode()).hexdigest(), redactions={"EMAIL_ADDRESS": i},
            status="ok", attempt=1,
        )  # fmt: skip
        audit.append(store, chain, entry)
    audit.seal(store, chain)


def verify_cli(*args: str) -> tuple[int, str]:
    result = invoke("audit", "verify", *args)
    return result.exit_code, result.output


@pytest.fixture
def chains(tmp_path, store_url, monkeypatch):
    """Two sealed chains of 6 records (run-a, run-b) in the parametrised store, which the CLI uses."""
    monkeypatch.setenv("EVALS_STORE", store_url)
    store = Store(tmp_path, url=store_url)
    make_chain(store, "run-a")
    make_chain(store, "run-b")
    yield store
    store.close()


def test_an_intact_trail_verifies(chains):
    code, output = verify_cli()
    assert code == 0, output
    assert "12 records in 2 chain(s), 2 head(s)" in output


@pytest.mark.parametrize(
    ("column", "value", "finding"),
    [
        ("endpoint", "other", "altered"),
        ("model", "gpt-x", "altered"),
        ("url", "https://elsewhere.example/v1", "altered"),
        ("sha256", "0" * 64, "altered"),
        ("redactions_json", "{}", "altered"),
        ("status", "ok2", "altered"),
        ("at", "2020-01-01T00:00:00+00:00", "altered"),
        ("role", "generator", "altered"),
        ("details_json", '{"note": "added"}', "altered"),
        ("hash", "f" * 64, "altered"),
        ("prev_hash", "0" * 64, "relinked"),
    ],
)
def test_an_updated_field_is_named_with_its_run_and_record(chains, column, value, finding):
    chains._execute(
        f"UPDATE audit_records SET {column} = ? WHERE chain_id = ? AND seq = ?", (value, "run-a", 3)
    )
    code, output = verify_cli()
    assert code == 1
    assert f"TAMPERED: chain run-a record 3: {finding}" in output
    assert "run-b" not in output.replace("2 chain(s)", "")  # the other run is intact
    assert verify_cli("--run", "run-b")[0] == 0


def test_a_deleted_record_is_named_as_the_gap(chains):
    chains._execute("DELETE FROM audit_records WHERE chain_id = ? AND seq = ?", ("run-b", 2))
    code, output = verify_cli("--run", "run-b")
    assert code == 1
    assert "TAMPERED: chain run-b record 2: missing: record 2 (the chain jumps to 3)" in output


def test_a_deleted_last_record_is_missing_from_its_head(chains):
    chains._execute("DELETE FROM audit_records WHERE chain_id = ? AND seq = ?", ("run-a", 5))
    code, output = verify_cli()
    assert code == 1
    assert (
        "chain run-a record 5: missing: head 0 of the heads chain counts 6 records, the chain has 5" in output
    )


def rewrite_tail(store: Store, chain: str, start: int) -> str:
    """Change record ``start`` of ``chain`` and recompute every hash after it, as a careful forger would;
    the new head hash."""
    prev = audit.GENESIS
    for row in sql.records(store, chain):
        if row.seq >= start:
            if row.seq == start:
                row = dataclasses.replace(row, endpoint="forged")
            row = dataclasses.replace(
                row, prev_hash=prev, hash=audit.chain_hash(prev, audit.record_fields(row))
            )
            store._execute(
                "UPDATE audit_records SET endpoint = ?, prev_hash = ?, hash = ? WHERE chain_id = ? AND seq = ?",
                (row.endpoint, row.prev_hash, row.hash, chain, row.seq),
            )
        prev = row.hash
    return prev


def test_a_consistently_rewritten_tail_no_longer_matches_its_head(chains):
    rewrite_tail(chains, "run-a", 4)
    code, output = verify_cli()
    assert code == 1
    assert (
        "chain run-a record 5: rewritten: head 0 of the heads chain sealed this record with another hash"
        in output
    )


def test_a_rewrite_of_the_heads_too_is_caught_by_the_anchor_kept_outside(chains):
    anchor = sql.last_head(chains, "run-a")
    assert anchor is not None
    new_head = rewrite_tail(chains, "run-a", 4)
    prev = audit.GENESIS
    for head in sql.heads(chains):  # the forger re-seals the heads chain as well
        if head.chain_id == "run-a":
            head = dataclasses.replace(head, head_hash=new_head)
        head = dataclasses.replace(head, prev_hash=prev, hash=audit.chain_hash(prev, audit.head_fields(head)))
        chains._execute(
            "UPDATE audit_heads SET head_hash = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (head.head_hash, head.prev_hash, head.hash, head.seq),
        )
        prev = head.hash
    assert verify_cli()[0] == 0  # nothing inside the store can tell any more...
    code, output = verify_cli("--anchor", f"run-a={anchor.head_hash}")
    assert code == 1  # ...but the head the run printed in the CI log can
    assert f"chain run-a: anchor {anchor.head_hash} does not match any record of the chain" in output


def test_an_altered_head_is_found(chains):
    chains._execute("UPDATE audit_heads SET count = 5 WHERE seq = 0")
    code, output = verify_cli()
    assert code == 1 and "chain (heads) record 0: altered" in output


@pytest.mark.parametrize(
    "anchor",
    ["run-a", "run-a=xyz", "run-a=", "=" + "a" * 64, "run-a=" + "a" * 63, "run-a=" + "a" * 65,
     "run-a:" + "a" * 64, "run-a=" + "g" * 64],
)  # fmt: skip
def test_a_malformed_anchor_is_a_usage_error(chains, anchor):
    code, output = verify_cli("--anchor", anchor)
    assert code == 2 and "expected RUN=HASH, HASH being 64 hex characters" in output


def test_an_anchor_of_a_run_that_run_does_not_check_is_refused_not_skipped(chains):
    head = sql.last_head(chains, "run-a")
    assert head is not None
    code, output = verify_cli("--run", "run-b", "--anchor", f"run-a={head.head_hash}")
    assert code == 2
    assert "run-a: --run run-b checks only that run's chain; anchor it, or drop --run" in output
    assert verify_cli("--run", "run-a", "--anchor", f"run-a={head.head_hash.upper()}")[0] == 0


def test_bad_arguments_and_unknown_runs_cannot_be_checked(chains):
    assert verify_cli("--anchor", "run-a")[0] == 2
    assert verify_cli("--anchor", "run-a=xyz")[0] == 2
    code, output = verify_cli("--run", "no-such-run")
    assert code == 2 and "no audit records or heads for 'no-such-run'" in output


def test_verify_streams_pages_and_notes_an_unsealed_tail(chains, monkeypatch):
    monkeypatch.setattr(sql, "PAGE", 4)  # records read 4 at a time: chains cross page boundaries
    audit.append(
        chains, "run-b", audit.Entry(kind=audit.CALL, at="2026-11-30T19:00:00+00:00", run_id="run-b")
    )
    result = verify(chains)
    assert result.intact and result.records == 13
    assert [str(n.chain_id) for n in result.notes] == ["run-b"]
    chains._execute("UPDATE audit_records SET attempt = 9 WHERE chain_id = ? AND seq = ?", ("run-b", 4))
    assert [(p.chain_id, p.seq) for p in verify(chains).problems] == [("run-b", 4)]


# ------------------------------------------------------------------------------------ events, sessions


def test_events_have_their_own_verified_chain(tmp_path, open_store):
    with open_store() as store:
        first = audit.record_event(store, "purge", {"older_than_days": 30, "runs": ["r1", "r2"]})
        second = audit.record_event(store, "purge", {"older_than_days": 7, "runs": []})
        assert (first.chain_id, first.seq, second.seq) == (audit.EVENTS_CHAIN, 0, 1)
        assert second.details == {"older_than_days": 7, "runs": []}
        assert sql.last_head(store, audit.EVENTS_CHAIN).count == 2
        assert verify(store).intact
        store._execute(
            "UPDATE audit_records SET details_json = ? WHERE seq = 0", ('{"older_than_days":30,"runs":[]}',)
        )
        assert [(p.chain_id, p.seq) for p in verify(store).problems] == [(audit.EVENTS_CHAIN, 0)]
        with pytest.raises(ValueError):
            audit.record_event(store, "call", {})


def test_calls_without_a_run_get_a_session_chain_sealed_when_recording_ends(
    tmp_path, open_store, fake_openai
):
    endpoint = Endpoint(base_url=fake_openai.url, model="m")
    request = CompletionRequest(messages=({"role": "user", "content": "hello"},))

    async def calibrate() -> None:
        provider = build_provider("local", endpoint)
        try:
            with calling(role="calibrate", item_id="c-1") as context:
                context.redactions.update({"EMAIL_ADDRESS": 2, "PERSON": 1})  # as redaction reports them
                await provider.complete(request)
        finally:
            await provider.aclose()

    with open_store() as store:
        with audit.recording(store) as trail:
            asyncio.run(calibrate())
        [row] = sql.records(store)
        assert row.chain_id == f"calibrate-{trail.session}" and row.run_id is None and row.role == "calibrate"
        assert row.sha256 == hashlib.sha256(fake_openai.raw_requests[0]).hexdigest()
        assert row.redactions == {"EMAIL_ADDRESS": 2, "PERSON": 1}
        assert sql.last_head(store, row.chain_id).count == 1
        asyncio.run(calibrate())  # outside a recording block nothing is recorded
        assert len(list(sql.records(store))) == 1


def test_an_interrupted_block_still_writes_and_seals_what_it_recorded(open_store):
    with open_store() as store:
        with pytest.raises(KeyboardInterrupt), audit.recording(store) as trail:
            trail.submit(audit.Entry(kind=audit.CALL, at=audit.now(), run_id="run-x", role="model"))
            raise KeyboardInterrupt
        assert sql.last_head(store, "run-x").count == 1


def test_heads_appended_by_concurrent_processes_form_one_chain(tmp_path, store_url):
    """Two runs ending at once on separate connections (as two machines would): one contiguous heads chain."""
    stores = [Store(tmp_path, url=store_url) for _ in range(2)]
    try:
        for i, store in enumerate(stores):
            for n in range(8):
                audit.append(store, f"run-{i}-{n}", audit.Entry(kind=audit.CALL, at=audit.now()))
        barrier = threading.Barrier(2)

        def seal_all(i: int) -> None:
            barrier.wait()
            for n in range(8):
                audit.seal(stores[i], f"run-{i}-{n}")

        threads = [threading.Thread(target=seal_all, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        heads = sql.heads(stores[0])
        assert [h.seq for h in heads] == list(range(16))
        assert verify(stores[0]).intact
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize(
    "fields",
    [
        {"b": 1, "a": None, "c": True, "d": [1, "x", False], "e": {"z": -(2**53) + 1, "y": 2**53 - 1}},
        {"text": 'quote " backslash \\ controls \x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f del, é, 漢字, \u2028 😀'},
        {"details": {"EMAIL_ADDRESS": 3, "nested": [{"k": "v"}, []]}, "empty": {}},
    ],
)
def test_the_fast_canonical_json_is_rfc8785s(fields):
    import rfc8785

    assert audit._plain(fields)
    assert audit.canonical(fields) == rfc8785.dumps(fields)


def test_values_outside_the_fast_path_are_still_canonical():
    import rfc8785

    for fields in ({"f": 1.0, "g": 1e21}, {"é-key": 1, "z": 2}, {"big": 2**60}):
        if "big" in fields:
            with pytest.raises(rfc8785.CanonicalizationError):
                audit.canonical(fields)
        else:
            assert audit.canonical(fields) == rfc8785.dumps(fields)
    assert audit.canonical({"f": 1.0}) == b'{"f":1}'


def test_a_run_stopped_by_a_failing_endpoint_still_seals_its_chain(project, servers, store_url):
    model, _ = servers
    model.inject(*[Fault("server_error", status=401)] * 8)  # a refused key: not retried, the run stops
    result = invoke(
        "run", "--suite", "suite.jsonl", "--model", "local", "--judge", "claude", "--fail-after", "2"
    )
    assert result.exit_code == 2, result.output
    rows = all_records(store_url, project)
    # The refused calls, and a call in flight when the run stopped (it went out: it is recorded too).
    assert "401" in {r.status for r in rows} and {r.status for r in rows} <= {"401", "cancelled"}
    with Store(project, url=store_url) as store:
        sealed = sql.last_head(store, rows[0].chain_id)
        assert sealed is not None and (sealed.head_hash, sealed.count) == (rows[-1].hash, len(rows))
        assert verify(store).intact


def test_events_recorded_by_two_processes_at_once_make_one_chain(tmp_path, store_url):
    """Two processes recording events at once (no shared lock: the store's key and retries order them)."""
    script = (
        "import sys; from evals.outbound import audit; from evals.store import Store\n"
        "with Store(sys.argv[1], url=sys.argv[2]) as store:\n"
        "    for n in range(15): audit.record_event(store, 'purge', {'by': int(sys.argv[3]), 'n': n})\n"
    )
    Store(tmp_path, url=store_url).close()  # migrated once, before both start
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), store_url, str(i)], stderr=subprocess.PIPE
        )
        for i in range(2)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr.decode()
    with Store(tmp_path, url=store_url) as store:
        rows = list(sql.records(store, audit.EVENTS_CHAIN))
        assert [r.seq for r in rows] == list(range(30))
        assert sorted((r.details["by"], r.details["n"]) for r in rows) == [
            (i, n) for i in range(2) for n in range(15)
        ]
        assert [h.seq for h in sql.heads(store)] == list(range(len(sql.heads(store))))
        assert verify(store).intact
