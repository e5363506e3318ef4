"""Keys and text at rest under pressure: every stored text is encrypted with EVALS_STORE_KEY, error messages
included (a server's error body echoes the prompt); a purge removes error text; a wrong key is refused before
anything is written (run, report, rekey, store copy); rekey works on any mix of clear text and keys it can
open and names, by run, what it cannot, changing nothing there. On both backends where a store is involved."""

import json
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner
from cryptography.fernet import Fernet

from evals.cli import main
from evals.errors import StoreError
from evals.fakes import FakeOpenAI, text_reply
from evals.records import Answer, Item, Judgment
from evals.store import Store
from evals.store.canary import (
    Anchor,
    AnchorScore,
    AnchorSet,
    Observation,
    anchors,
    create_set,
    observations,
    save_observation,
    scores,
)
from evals.store.crypto import TextCodec
from evals.store.rekey import rekey, rekey_store

ROOT = Path(__file__).parent.parent
KEY, OLD, FOREIGN, WRONG = (Fernet.generate_key().decode() for _ in range(4))
SECRET = "Jane Roe of 12 Elm Street"
WRONG_KEY_LINE = "EVALS_STORE_KEY does not match the key this store's text was encrypted with"
SCORES = {f"{area}-{i:02d}": [s] for area, s in (("math", 5), ("geo", 4)) for i in range(4)}

TEXT_COLUMNS = {
    "items": ("item_json",),
    "answers": ("text", "reasoning", "error"),
    "judgments": ("rationale", "raw", "error"),
    "canary_anchors": ("item_json", "answer"),
    "canary_scores": ("error",),
    "canary_observations": ("error",),
}
DATA_TABLES = ("runs", "items", "answers", "judgments", "store_key", "canary_anchors", "canary_scores")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def stored_text(store):
    """Every non-null value of every column that holds text, as the database holds it."""
    out = []
    for table, columns in TEXT_COLUMNS.items():
        for row in store._execute(f"SELECT {','.join(columns)} FROM {table}").fetchall():
            out += [v for v in row if v is not None]
    return out


def snapshot(store):
    """The whole content of the tables a run, a rekey or a copy would write, to compare before and after."""
    return {
        table: sorted(map(repr, store._execute(f"SELECT * FROM {table}").fetchall())) for table in DATA_TABLES
    }


def secret_run(store, run_id, error=None):
    """A run whose questions, answers, rationales and (when ``error``) errors hold SECRET."""
    make_run(
        store, run_id, SCORES, questions={k: f"{SECRET} asks {k}" for k in SCORES},
        answers={k: f"{SECRET} answers {k}" for k in SCORES},
    )  # fmt: skip
    if error:
        store.save_answer(Answer(run_id, "geo-00", 0, None, error=f"{error}: {SECRET} asks geo-00"))
        store.save_judgment(
            Judgment(run_id, "math-00", 0, None, None, f"{SECRET} raw", "claude-test", f"{run_id}-e",
                     error=f"{error}: {SECRET} answers math-00")
        )  # fmt: skip


# -- error text is sealed, on both backends -------------------------------------------------------------


def test_error_messages_are_encrypted_and_read_back_with_the_key(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        secret_run(store, "r01", error="500 Internal Server Error")
        assert not any(SECRET in v for v in stored_text(store))
        answer_error = store._execute("SELECT error FROM answers WHERE error IS NOT NULL").fetchone()[0]
        judge_error = store._execute("SELECT error FROM judgments WHERE error IS NOT NULL").fetchone()[0]
        assert answer_error.startswith("fernet:") and judge_error.startswith("fernet:")
        assert store.answers("r01")[("geo-00", 0)].error == f"500 Internal Server Error: {SECRET} asks geo-00"
        rows = {r.id: r for r in store.results("r01")}
        assert rows["math-00"].judge_error == f"500 Internal Server Error: {SECRET} answers math-00"
        monkeypatch.delenv("EVALS_STORE_KEY")
        rows = {r.id: r for r in store.results("r01")}
    # Without the key the error is still an error (counted, gated on), its text unreadable.
    assert rows["geo-00"].error == "(encrypted)" and rows["geo-00"].score is None
    assert rows["math-00"].judge_error == "(encrypted)"


def test_canary_errors_are_encrypted(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    item = Item(id="q1", area="a", question=f"{SECRET}?", reference="r")
    with open_store() as store:
        anchor_set = AnchorSet("s1", "fp", "claude", "demo", "r1", "r01", "2026-11-01T00:00:00+00:00")
        create_set(store, anchor_set, [Anchor(item, f"{SECRET} answer", False, 4.0)])
        observation = Observation("s1", "r02", "2026-11-02T00:00:00+00:00", "2026-11-02T00:00:00+00:00", 0.5,
                                  ("m",), "r1", error=f"judge failed on {SECRET}")  # fmt: skip
        save_observation(store, observation, [AnchorScore("q1", None, f"400 Bad Request: {SECRET}")])
        assert not any(SECRET in v for v in stored_text(store))
        assert observations(store, "s1")[0].error == f"judge failed on {SECRET}"
        assert scores(store, "s1", "r02")[0].error == f"400 Bad Request: {SECRET}"
        assert anchors(store, "s1")[0].answer == f"{SECRET} answer"


def test_a_server_error_echoing_the_prompt_is_stored_encrypted_by_a_real_run(
    tmp_path, store_url, monkeypatch
):
    monkeypatch.setenv("EVALS_STORE", store_url)
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    project(tmp_path)
    with FakeOpenAI(_responder("q1")) as model:
        _config(tmp_path, model.url)
        done = invoke("run", "--suite", "suite.jsonl", "--run-id", "enc", "--judge", "offline")
    assert done.exit_code == 0, done.output
    with Store(tmp_path / "reports") as store:
        error = store.answers("enc")[("q1", 0)].error
        assert SECRET in error  # the server echoed the prompt in its error body
        assert not any(SECRET in v for v in stored_text(store))
    if not store_url.startswith("postgresql"):
        for db_file in Path(store_url).parent.glob("evals.db*"):  # the database and its WAL
            assert SECRET.encode() not in db_file.read_bytes(), db_file


# -- purge removes error text ----------------------------------------------------------------------------


def evals_purge(tmp_path, store_url, monkeypatch, run_id):
    """``evals purge --run RUN_ID`` on the parametrised store (reports folder ``tmp_path``), without a key."""
    monkeypatch.setenv("EVALS_STORE", store_url)
    monkeypatch.delenv("EVALS_STORE_KEY", raising=False)  # a purge needs no key
    result = invoke("purge", "--run", run_id, "--reports", tmp_path)
    monkeypatch.delenv("EVALS_STORE")
    assert result.exit_code == 0, result.output
    assert "purged 1 run(s)" in result.output


@pytest.mark.parametrize("key", [None, KEY])
def test_purge_removes_error_text_and_keeps_the_errors_counted(
    open_store, store_url, tmp_path, monkeypatch, key
):
    if key:
        monkeypatch.setenv("EVALS_STORE_KEY", key)
    with open_store() as store:
        secret_run(store, "r01", error="500 Internal Server Error")
        before = store.save_aggregates("r01")
    evals_purge(tmp_path, store_url, monkeypatch, "r01")
    with open_store() as store:
        errors = [
            r[0] for r in store._execute("SELECT error FROM answers WHERE error IS NOT NULL").fetchall()
        ]
        errors += [
            r[0] for r in store._execute("SELECT error FROM judgments WHERE error IS NOT NULL").fetchall()
        ]
        assert errors == ["(purged)", "(purged)"]
        assert not any(SECRET in v or v.startswith("fernet:") for v in stored_text(store))
        after = store.save_aggregates("r01")
        rows = {r.id: r for r in store.results("r01")}
        export = store.export_jsonl("r01").read_text()
    assert [(a.area, a.answer_errors, a.judge_errors) for a in after] == [
        (a.area, a.answer_errors, a.judge_errors) for a in before
    ]
    assert rows["geo-00"].error == "(purged)" and rows["geo-00"].score is None
    assert SECRET not in export


# -- a wrong key is refused before anything is written ---------------------------------------------------


def project(folder: Path, n: int = 3) -> None:
    suite = [
        {"id": f"q{i}", "area": "a", "question": f"{SECRET} {i}?", "reference": str(i)} for i in range(n)
    ]
    (folder / "suite.jsonl").write_text("".join(json.dumps(s) + "\n" for s in suite))


def _responder(fail: str | None):
    def answer(question: str) -> str:
        number = question.split()[-1].rstrip("?")
        if fail and f"q{number}" == fail:
            raise ValueError(f"cannot answer {question}")  # the fake's 500 body quotes it
        return number

    return text_reply(answer)


def _config(folder: Path, url: str) -> None:
    config = {
        "models": {"local": {"base_url": url, "model": "m", "max_retries": 0}},
        "judges_dir": str(ROOT / "judges"),
    }
    (folder / "evals.yaml").write_text(yaml.safe_dump(config))


def test_a_wrong_key_stops_run_report_and_rekey_before_they_write(tmp_path, store_url, monkeypatch):
    monkeypatch.setenv("EVALS_STORE", store_url)
    project(tmp_path)
    with FakeOpenAI(_responder(None)) as model:
        _config(tmp_path, model.url)
        monkeypatch.setenv("EVALS_STORE_KEY", KEY)
        assert (
            invoke("run", "--suite", "suite.jsonl", "--run-id", "first", "--judge", "offline").exit_code == 0
        )
        with Store(tmp_path / "reports") as store:
            before = snapshot(store)
        monkeypatch.setenv("EVALS_STORE_KEY", WRONG)
        refused = {
            "run": invoke("run", "--suite", "suite.jsonl", "--run-id", "second", "--judge", "offline"),
            "resume": invoke("run", "--resume", "first"),
            "report": invoke("report", "first"),
            "rekey": invoke("store", "rekey"),
            "rotation to an unknown pair": None,
        }
        monkeypatch.setenv("EVALS_STORE_KEY", f"{WRONG},{FOREIGN}")  # two keys, neither the store's
        refused["rotation to an unknown pair"] = invoke("store", "rekey")
        calls = model.count()
    for what, result in refused.items():
        assert result.exit_code == 2, (what, result.output)
        assert WRONG_KEY_LINE in result.output, (what, result.output)
        assert result.output.count("\n") <= 2, (what, result.output)  # one line (rekey's none more)
        for secret in (KEY, WRONG, FOREIGN, SECRET):
            assert secret not in result.output, what
    assert calls == 3  # the first run's three answers: the refused ones asked nothing
    with Store(tmp_path / "reports") as store:
        assert snapshot(store) == before  # not a row, not a value written under the wrong key
        assert [m.run_id for m in store.runs()] == ["first"]
    assert not (tmp_path / "reports" / "runs" / "second").exists()
    # The right key still reads and rekeys the whole store (before the check, this failed for the store).
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    assert invoke("report", "first").exit_code == 0
    rekeyed = invoke("store", "rekey")
    assert rekeyed.exit_code == 0, rekeyed.output


def test_a_new_store_remembers_its_first_key_even_before_any_run(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        store.check_key()  # what every command does on opening
        assert store.runs() == []
    monkeypatch.setenv("EVALS_STORE_KEY", WRONG)
    with open_store() as store, pytest.raises(StoreError, match="does not match the key"):
        make_run(store, "r01", SCORES)
    with open_store() as store:
        assert store.runs() == []


def test_store_copy_into_a_store_with_another_key_copies_nothing(tmp_path, monkeypatch):
    source, target = tmp_path / "a" / "evals.db", tmp_path / "b" / "evals.db"
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with Store(source.parent, url=str(source)) as store:
        secret_run(store, "r01")
    monkeypatch.setenv("EVALS_STORE_KEY", OLD)
    with Store(target.parent, url=str(target)) as store:
        secret_run(store, "t01")
        before = snapshot(store)
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    copied = invoke("store", "copy", source, target)
    assert copied.exit_code == 2 and WRONG_KEY_LINE in copied.output
    with Store(target.parent, url=str(target)) as store:
        assert snapshot(store) == before


def test_store_copy_without_the_key_refuses_to_copy_encrypted_text(tmp_path, monkeypatch):
    source, target = tmp_path / "a" / "evals.db", tmp_path / "b" / "evals.db"
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with Store(source.parent, url=str(source)) as store:
        secret_run(store, "r01")
    monkeypatch.delenv("EVALS_STORE_KEY")
    copied = invoke("store", "copy", source, target)
    assert copied.exit_code == 2 and "encrypts its text and EVALS_STORE_KEY is not set" in copied.output
    assert not target.parent.exists()  # refused before the target was opened
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    assert invoke("store", "copy", source, target).exit_code == 0
    with Store(target.parent, url=str(target)) as store:
        assert next(iter(store.results("r01"))).answer == f"{SECRET} answers math-00"


def test_a_store_encrypted_before_the_check_is_checked_against_its_values(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        secret_run(store, "r01")
        store._execute("DELETE FROM store_key")  # as an older lookingglass left it: no check value
    monkeypatch.setenv("EVALS_STORE_KEY", WRONG)
    with open_store() as store, pytest.raises(StoreError, match="does not match the key"):
        store.check_key()
    with open_store() as store:
        assert store._execute("SELECT count(*) FROM store_key").fetchone()[0] == 0  # nothing recorded
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        store.check_key()  # opens the store's values: accepted, and recorded from now on
        assert next(iter(store.results("r01"))).answer == f"{SECRET} answers math-00"
    monkeypatch.setenv("EVALS_STORE_KEY", WRONG)
    with open_store() as store, pytest.raises(StoreError, match="does not match the key"):
        store.check_key()


def test_a_rotation_makes_the_new_key_the_stores(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", OLD)
    with open_store() as store:
        secret_run(store, "r01")
    monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{OLD}")
    with open_store() as store:
        secret_run(store, "r02")
    monkeypatch.setenv("EVALS_STORE_KEY", OLD)  # a machine left on the old key alone would write under it
    with open_store() as store, pytest.raises(StoreError, match="does not match the key"):
        make_run(store, "r03", SCORES)
    monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{OLD}")
    with open_store() as store:
        assert rekey(store) > 0
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)  # rotation done: the old key can go
    with open_store() as store:
        assert {next(iter(store.results(r))).answer for r in ("r01", "r02")} == {f"{SECRET} answers math-00"}
        assert [m.run_id for m in store.runs()] == ["r01", "r02"]


# -- a missing key -------------------------------------------------------------------------------------


def test_without_the_key_an_encrypted_store_reads_scores_and_refuses_what_needs_text(tmp_path, monkeypatch):
    project(tmp_path)
    with FakeOpenAI(_responder(None)) as model:
        _config(tmp_path, model.url)
        monkeypatch.setenv("EVALS_STORE_KEY", KEY)
        assert (
            invoke("run", "--suite", "suite.jsonl", "--run-id", "sealed", "--judge", "offline").exit_code == 0
        )
        monkeypatch.delenv("EVALS_STORE_KEY")
        report = invoke("report", "sealed")
        rekeyed = invoke("store", "rekey")
        clear = [invoke("run", "--suite", "suite.jsonl", "--run-id", f"clear{i}", "--judge", "offline")
                 for i in range(2)]  # fmt: skip
    assert report.exit_code == 0, report.output
    card = json.loads((tmp_path / "reports" / "runs" / "sealed" / "scorecard.json").read_text())
    assert SECRET not in json.dumps(card)
    assert rekeyed.exit_code == 2 and "EVALS_STORE_KEY is not set" in rekeyed.output
    # Every clear run warns, also once the latest run is a clear one: the store's key check says it encrypts.
    for result in clear:
        assert result.exit_code == 0
        assert "this store encrypts its text but EVALS_STORE_KEY is not set here" in result.output


# -- rekey on a mixed store ----------------------------------------------------------------------------


def _seal_run_under(store, run_id, key):
    """Seal a clear run's text under ``key`` directly in the tables: what a process with another key wrote
    before the key check existed."""
    other = TextCodec(key)
    for table, columns, keys in (
        ("answers", ("text", "reasoning", "error"), ("item_id", "sample")),
        ("judgments", ("rationale", "raw", "error"), ("item_id", "sample", "repeat", "judge")),
    ):
        rows = store._execute(f"SELECT {','.join(keys + columns)} FROM {table} WHERE run_id = ?", (run_id,))
        for row in rows.fetchall():
            sets = ", ".join(f"{c} = ?" for c in columns)
            where = " AND ".join(f"{c} = ?" for c in keys)
            store._execute(
                f"UPDATE {table} SET {sets} WHERE run_id = ? AND {where}",
                (*(other.seal(v) for v in row[len(keys) :]), run_id, *row[: len(keys)]),
            )
    for item_id, item_json in store._execute(
        "SELECT item_id, item_json FROM items WHERE run_id = ?", (run_id,)
    ).fetchall():
        sealed = json.dumps(other.seal_item(json.loads(item_json)), separators=(",", ":"))
        store._execute(
            "UPDATE items SET item_json = ? WHERE run_id = ? AND item_id = ?", (sealed, run_id, item_id)
        )


def _mixed_store(open_store, monkeypatch):
    """r01 in clear, r02 under OLD (the store's key), r03 under FOREIGN (written past the check)."""
    with open_store() as store:
        secret_run(store, "r01", error="503 Service Unavailable")
        monkeypatch.setenv("EVALS_STORE_KEY", OLD)
        secret_run(store, "r02", error="503 Service Unavailable")
        monkeypatch.delenv("EVALS_STORE_KEY")
        secret_run(store, "r03", error="503 Service Unavailable")
        _seal_run_under(store, "r03", FOREIGN)
        return {r[0]: r[1] for r in store._execute("SELECT run_id, item_json FROM items").fetchall()}


def test_rekey_moves_what_it_can_read_and_names_the_runs_it_cannot(open_store, monkeypatch):
    _mixed_store(open_store, monkeypatch)
    with open_store() as store:
        r03 = snapshot_run(store, "r03")
    monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{OLD}")
    with open_store() as store:
        done = rekey_store(store)
        assert done.unreadable == {"run r03": len(r03)}
        assert snapshot_run(store, "r03") == r03  # not a value of it changed
        problem = done.problem()
    assert "run r03 (" in problem and "r01" not in problem and "r02" not in problem
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        for run_id in ("r01", "r02"):
            rows = {r.id: r for r in store.results(run_id)}
            assert rows["math-01"].answer == f"{SECRET} answers math-01"
            assert rows["geo-00"].error == f"503 Service Unavailable: {SECRET} asks geo-00"
        assert not any(SECRET in v for v in stored_text(store))
    # With the key r03 was written under added, a second rekey finishes the job.
    monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{FOREIGN}")
    with open_store() as store:
        assert rekey_store(store).unreadable == {}
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        assert {r.answer for r in store.results("r03") if r.id == "math-01"} == {f"{SECRET} answers math-01"}


def snapshot_run(store, run_id):
    """The text values of one run, as stored."""
    out = []
    for table, columns in (
        ("items", ("item_json",)),
        *((t, c) for t, c in TEXT_COLUMNS.items() if t in ("answers", "judgments")),
    ):
        out += [
            v
            for r in store._execute(
                f"SELECT {','.join(columns)} FROM {table} WHERE run_id = ?", (run_id,)
            ).fetchall()
            for v in r
            if v is not None
        ]
    return sorted(out)


def test_rekey_on_the_cli_names_what_it_cannot_read_and_exits_2(tmp_path, monkeypatch):
    url = str(tmp_path / "reports" / "evals.db")
    monkeypatch.setenv("EVALS_STORE", url)
    _mixed_store(lambda: Store(tmp_path / "reports", url=url), monkeypatch)
    monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{OLD}")
    result = invoke("store", "rekey")
    assert result.exit_code == 2
    assert "text value(s) written under the newest key" in result.output
    assert "could not be decrypted with EVALS_STORE_KEY and were left as they were: run r03" in result.output
    assert all(secret not in result.output for secret in (KEY, OLD, FOREIGN, SECRET))


def test_a_store_holding_text_under_a_key_not_given_is_refused_on_opening(open_store, monkeypatch):
    _mixed_store(open_store, monkeypatch)
    with open_store() as store:
        store._execute("DELETE FROM store_key")  # a store from before the check: its values are sampled
    monkeypatch.setenv("EVALS_STORE_KEY", OLD)
    with open_store() as store, pytest.raises(StoreError, match="opens some of this store's encrypted text"):
        store.check_key()
    monkeypatch.setenv("EVALS_STORE_KEY", WRONG)
    with open_store() as store:
        before = snapshot(store)
        with pytest.raises(StoreError, match="does not match the key"):
            rekey_store(store)  # a key that opens nothing changes nothing
        assert snapshot(store) == before


def test_purged_text_stays_purged_through_a_rekey(open_store, store_url, tmp_path, monkeypatch):
    with open_store() as store:
        secret_run(store, "r01", error="500 Internal Server Error")
    evals_purge(tmp_path, store_url, monkeypatch, "r01")
    with open_store() as store:
        monkeypatch.setenv("EVALS_STORE_KEY", KEY)
        done = rekey_store(store)
        assert (done.written, done.unreadable) == (0, {})
        assert all(v == "(purged)" or v.startswith("{") for v in stored_text(store))
